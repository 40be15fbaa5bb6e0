// The template editor (ocr/web/routes_templates.py): the learned fields' boxes drawn over the page in page mm (the
// SVG's viewBox), selected, renamed, merged, split, moved and deleted, rules accepted or written; after each edit the
// whole draft is posted as JSON, and saving or trying waits for that post first.
"use strict";
(function () {
  const root = document.getElementById("editor");
  const draft = JSON.parse(document.getElementById("draft-data").textContent);
  const svg = document.getElementById("boxes");
  const NS = "http://www.w3.org/2000/svg";
  const t = root.dataset;
  const $ = (id) => document.getElementById(id);
  let selected = [];  // indices into draft.fields
  const hint = $("selection").textContent;
  let pending = Promise.resolve(true);

  // --- keeping the draft on the server -------------------------------------------------------------------------
  function post() {
    return fetch(root.dataset.url, {method: "POST", headers: {"Content-Type": "application/json",
      "X-CSRF-Token": root.dataset.csrf}, body: JSON.stringify(draft), credentials: "same-origin"})
      .then((r) => { $("sync-status").textContent = r.ok ? t.tKept : t.tFailed; return r.ok; })
      .catch(() => { $("sync-status").textContent = t.tFailed; return false; });
  }
  function changed() {
    pending = pending.then(post);  // in order: the last post carries the last state
    render();
  }
  for (const id of ["save-form", "try-form"]) {
    $(id).addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      pending.then(post).then((ok) => { if (ok) form.submit(); });
    });
  }

  // --- drawing ---------------------------------------------------------------------------------------------------
  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    parent.appendChild(node);
    return node;
  }
  function render() {
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.index : undefined;
    svg.replaceChildren();
    draft.fields.forEach((f, i) => {
      const g = el("g", {class: "field" + (selected.includes(i) ? " selected" : ""), tabindex: "0", role: "button",
                        "data-index": i, "data-id": f.id, "aria-label": f.id + (f.label ? " " + f.label : "")}, svg);
      for (const [x, y, w, h] of f.boxes_mm) el("rect", {x, y, width: w, height: h}, g);
      const [x, y] = f.boxes_mm[0];
      el("text", {x, y: y - 1.2}, g).textContent = f.id;
    });
    if (focused !== undefined) {
      const again = svg.querySelector(`g[data-index="${focused}"]`);
      if (again) again.focus();
    }
    panel();
    rules();
  }
  function panel() {
    const one = selected.length === 1 ? draft.fields[selected[0]] : null;
    $("selection").textContent = one ? one.id : selected.length ? `${selected.length} ${t.tFields}` : hint;
    for (const id of ["field-id", "field-label", "split-at", "split"]) $(id).disabled = !one;
    $("merge").disabled = selected.length < 2;
    $("delete").disabled = selected.length === 0;
    $("field-id").value = one ? one.id : "";
    $("field-label").value = one ? one.label : "";
    const split = $("split-at");
    split.replaceChildren();
    if (one) {
      for (let k = 1; k < one.boxes_mm.length; k++) {
        const option = document.createElement("option");
        option.value = k;
        option.textContent = `${t.tBox} ${k + 1}`;
        split.appendChild(option);
      }
      split.disabled = $("split").disabled = one.boxes_mm.length < 2;
    }
  }
  function rules() {
    const list = $("rules");
    list.replaceChildren();
    draft.rules.forEach((rule, i) => {
      const li = document.createElement("li");
      li.className = rule.accepted ? "accepted" : "proposed";
      const code = document.createElement("code");
      code.textContent = rule.expr;
      const state = document.createElement("span");
      state.className = "state";
      state.textContent = rule.accepted ? t.tAccepted : t.tProposed;
      li.append(code, " ", state, " ");
      if (!rule.accepted) li.append(button(t.tAccept, () => { rule.accepted = true; changed(); }));
      li.append(button(t.tRemove, () => { draft.rules.splice(i, 1); changed(); }));
      list.appendChild(li);
    });
  }
  function button(text, onclick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary small";
    b.textContent = text;
    b.addEventListener("click", onclick);
    return b;
  }

  // --- editing ---------------------------------------------------------------------------------------------------
  function select(i, add) {
    selected = add ? (selected.includes(i) ? selected.filter((k) => k !== i) : [...selected, i]) : [i];
    render();
  }
  const round = (v) => Math.round(v * 100) / 100;
  function move(dx, dy) {
    for (const i of selected) {
      draft.fields[i].boxes_mm = draft.fields[i].boxes_mm.map(([x, y, w, h]) => [round(x + dx), round(y + dy), w, h]);
    }
  }
  function merge() {  // the selected fields' boxes in x order, under the first one's id and label
    if (selected.length < 2) return;
    const chosen = selected.map((i) => draft.fields[i]).sort((a, b) => a.boxes_mm[0][0] - b.boxes_mm[0][0]);
    const boxes = chosen.flatMap((f) => f.boxes_mm).sort((a, b) => a[0] - b[0]).slice(0, 8);
    const stroke = chosen.reduce((s, f) => s + f.stroke_mm, 0) / chosen.length;
    const merged = {id: chosen[0].id, label: chosen[0].label, boxes_mm: boxes, stroke_mm: round(stroke)};
    const at = Math.min(...selected);
    draft.fields = draft.fields.filter((_, i) => !selected.includes(i));
    draft.fields.splice(at, 0, merged);
    selected = [at];
    changed();
  }
  function split() {
    const i = selected[0], f = draft.fields[i], k = Number($("split-at").value);
    if (selected.length !== 1 || !(k > 0 && k < f.boxes_mm.length)) return;
    const second = {id: f.id + "_2", label: f.label, boxes_mm: f.boxes_mm.slice(k), stroke_mm: f.stroke_mm};
    f.boxes_mm = f.boxes_mm.slice(0, k);
    draft.fields.splice(i + 1, 0, second);
    selected = [i];
    changed();
  }
  function remove() {
    draft.fields = draft.fields.filter((_, i) => !selected.includes(i));
    selected = [];
    changed();
  }

  svg.addEventListener("focusin", (event) => {
    const g = event.target.closest("g.field");
    if (g && !drag && !selected.includes(Number(g.dataset.index))) select(Number(g.dataset.index), false);
  });
  svg.addEventListener("keydown", (event) => {
    const g = event.target.closest("g.field");
    if (!g) return;
    const arrows = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
    if (event.key in arrows) {
      const step = event.shiftKey ? 1 : 0.1;
      move(arrows[event.key][0] * step, arrows[event.key][1] * step);
      changed();
    } else if (event.key === "Enter") {
      $("field-id").focus();
      $("field-id").select();
    } else if (event.key === "Delete" || event.key === "Backspace") {
      remove();
    } else if (event.key === "m" || event.key === "M") {
      merge();
    } else if (event.key === "+" || event.key === "-") {
      zoom(event.key === "+" ? 1 : -1);
    } else if (event.key === "Escape") {
      selected = [];
      render();
    } else {
      return;
    }
    event.preventDefault();
  });

  // Dragging: page mm per screen px from the SVG's drawn size; one post when the mouse is let go.
  let drag = null;
  svg.addEventListener("mousedown", (event) => {
    const g = event.target.closest("g.field");
    if (!g) return;
    const i = Number(g.dataset.index);
    const scale = svg.viewBox.baseVal.width / svg.getBoundingClientRect().width;
    drag = {x: event.clientX, y: event.clientY, scale, moved: false};  // also tells focusin this is a click
    if (event.shiftKey || !selected.includes(i)) select(i, event.shiftKey);
    event.preventDefault();
    svg.querySelector(`g[data-index="${i}"]`).focus();
  });
  window.addEventListener("mousemove", (event) => {
    if (!drag) return;
    const dx = (event.clientX - drag.x) * drag.scale, dy = (event.clientY - drag.y) * drag.scale;
    if (Math.abs(dx) + Math.abs(dy) < 0.2) return;
    move(dx, dy);
    drag.x = event.clientX;
    drag.y = event.clientY;
    drag.moved = true;
    render();
  });
  window.addEventListener("mouseup", () => {
    if (drag && drag.moved) changed();
    drag = null;
  });

  function rename(key, input) {
    if (selected.length !== 1) return;
    draft.fields[selected[0]][key] = input.value.trim();
    changed();
  }
  for (const [id, key] of [["field-id", "id"], ["field-label", "label"]]) {
    $(id).addEventListener("change", (event) => rename(key, event.target));
    $(id).addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      const index = selected[0];
      event.target.blur();  // its change event renames (and draws again) before the field gets the focus back
      const g = svg.querySelector(`g[data-index="${index}"]`);
      if (g) g.focus();
    });
  }
  // Zoom: the page drawn wider than its column, scrolled inside its own box; the boxes follow (same viewBox).
  const zooms = [1, 1.5, 2, 3, 4];
  let zoomed = 0;
  function zoom(step) {
    zoomed = Math.min(zooms.length - 1, Math.max(0, zoomed + step));
    $("canvas").style.width = `${zooms[zoomed] * 100}%`;
    $("zoom-level").textContent = `${zooms[zoomed] * 100} %`;
  }
  $("zoom-in").addEventListener("click", () => zoom(1));
  $("zoom-out").addEventListener("click", () => zoom(-1));
  $("merge").addEventListener("click", merge);
  $("split").addEventListener("click", split);
  $("delete").addEventListener("click", remove);
  function addRule() {
    const expr = $("new-rule").value.trim();
    if (!expr) return;
    draft.rules.push({expr, accepted: true});
    $("new-rule").value = "";
    changed();
  }
  $("add-rule").addEventListener("click", addRule);
  $("new-rule").addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); addRule(); }
  });
  const meta = [["template-id", "template_id", String], ["description", "description", String],
                ["page-number", "page", Number]];
  for (const [id, key, type] of meta) {
    $(id).addEventListener("change", (event) => { draft[key] = type(event.target.value.trim()); changed(); });
  }
  render();
})();
