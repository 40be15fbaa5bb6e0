// The upload form's region pickers: each select, once chosen, fills the next from /regions?parent=CODE
// (ocr/web/routes_upload.py), so that a TPS's kelurahan/desa is picked from the registry, never typed. A form shown
// again after a refusal names its desa (data-desa): the pickers are filled down to it.
"use strict";
(function () {
  const selects = document.querySelectorAll("select[data-region]");
  if (!selects.length) return;
  let picked = selects[0].closest("fieldset").dataset.desa || "";

  function after(select) {
    return select.dataset.next && document.getElementById(select.dataset.next);
  }
  function clear(select) {
    select.length = 1;  // keeps the empty choice
    select.disabled = true;
    delete select.dataset.parent;  // a list still on its way belongs to a choice undone: dropped when it comes
    const next = after(select);
    if (next) clear(next);
  }
  async function fill(select, parent) {
    select.dataset.parent = parent;
    const response = await fetch("/regions?parent=" + encodeURIComponent(parent), {credentials: "same-origin"});
    const regions = response.ok ? await response.json() : [];
    if (select.dataset.parent !== parent) return;  // chosen again meanwhile: the newer list wins
    for (const region of regions) {
      select.add(new Option(region.name + " (" + region.code + ")", region.code));
    }
    select.disabled = false;
    const again = regions.find((region) => picked.startsWith(region.code));
    if (again && !select.value) {
      select.value = again.code;
      select.dispatchEvent(new Event("change"));
    }
  }
  selects.forEach((select) => {
    select.addEventListener("change", (event) => {
      if (event.isTrusted) picked = "";  // the operator chose: the desa shown again is not restored any more
      const next = after(select);
      if (!next) return;
      clear(next);
      if (select.value) fill(next, select.value);
    });
  });
  fill(selects[0], "");
})();
