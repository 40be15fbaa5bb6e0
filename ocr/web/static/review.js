// Live re-check of the form's rules on the review page: the rules come as JSON (ocr/web/routes_review.py _rules_json),
// values from the page's inputs; a rule reading an empty or non-numeric field is not judged.
"use strict";
(function () {
  const rules = JSON.parse(document.getElementById("rules-data").textContent);
  const inputs = {};
  document.querySelectorAll("input[data-field]").forEach((el) => { inputs[el.dataset.field] = el; });

  function value(id) {
    const el = inputs[id];
    if (!el) return null;
    const text = el.value.trim();
    return /^[0-9]+$/.test(text) ? Number(text) : null;
  }
  function evaluate(node) {
    if ("n" in node) return node.n;
    if ("f" in node) return value(node.f);
    if ("s" in node) {
      let total = 0;
      for (const id of node.s) { const v = value(id); if (v === null) return null; total += v; }
      return total;
    }
    if ("c" in node) { const v = evaluate(node.c); return v === null ? null : Math.ceil(Math.round(v * 1e9) / 1e9); }
    const a = evaluate(node.l), b = evaluate(node.r);
    if (a === null || b === null) return null;
    return node.op === "+" ? a + b : node.op === "-" ? a - b : a * b;
  }
  function holds(rule, a, b) {
    switch (rule.cmp) {
      case "=": return Math.abs(a - b) <= rule.tol;
      case "<=": return a <= b + rule.tol;
      case ">=": return a + rule.tol >= b;
      case "<": return a < b + rule.tol;
      default: return a + rule.tol > b;
    }
  }
  function fields(node, out) {
    if ("f" in node) out.push(node.f);
    else if ("s" in node) out.push(...node.s);
    else if ("c" in node) fields(node.c, out);
    else if ("op" in node) { fields(node.l, out); fields(node.r, out); }
    return out;
  }
  function check() {
    let hardFailing = 0;
    const bad = new Set();
    rules.forEach((rule, i) => {
      const li = document.querySelector(`#rules li[data-i="${i}"]`);
      const a = evaluate(rule.l), b = evaluate(rule.r);
      const state = a === null || b === null ? "unknown" : holds(rule, a, b) ? "ok" : rule.hard ? "fail" : "soft";
      li.className = state;
      li.querySelector(".sides").textContent = state === "fail" || state === "soft" ? `${a} vs ${b}` : "";
      if (state === "fail" || state === "unknown") {
        if (rule.hard) hardFailing += 1;
        fields(rule.l, []).concat(fields(rule.r, [])).forEach((id) => bad.add(id));
      }
    });
    Object.entries(inputs).forEach(([id, el]) => el.classList.toggle("in-failed-rule", bad.has(id)));
    const summary = document.getElementById("rules-summary");
    const words = summary.parentElement.dataset;  // the page's language: .rulebox data-failing-one, -many, -holding
    summary.textContent = hardFailing === 0 ? words.holding
      : hardFailing === 1 ? words.failingOne : words.failingMany.replace("{n}", hardFailing);
    summary.className = hardFailing ? "fail" : "good";
  }
  document.addEventListener("input", check);
  check();
})();
