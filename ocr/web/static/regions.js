// The upload form's region pickers: each select, once chosen, fills the next from /regions?parent=CODE
// (ocr/web/routes_upload.py), so that a TPS's kelurahan/desa is picked from the registry, never typed.
"use strict";
(function () {
  const selects = document.querySelectorAll("select[data-region]");
  if (!selects.length) return;

  function clear(select) {
    select.length = 1;  // keeps the empty choice
    select.disabled = true;
    const next = select.dataset.next && document.getElementById(select.dataset.next);
    if (next) clear(next);
  }
  async function fill(select, parent) {
    const response = await fetch("/regions?parent=" + encodeURIComponent(parent), {credentials: "same-origin"});
    if (!response.ok) return;
    for (const region of await response.json()) {
      select.add(new Option(region.name + " (" + region.code + ")", region.code));
    }
    select.disabled = false;
  }
  selects.forEach((select) => {
    select.addEventListener("change", () => {
      const next = select.dataset.next && document.getElementById(select.dataset.next);
      if (!next) return;
      clear(next);
      if (select.value) fill(next, select.value);
    });
  });
  fill(selects[0], "");
})();
