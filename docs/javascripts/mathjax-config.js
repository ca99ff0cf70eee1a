// MathJax 3 settings for pymdownx.arithmatex (generic mode): \( \) inline, \[ \] display.
// Loaded before docs/javascripts/mathjax/tex-svg.js (MathJax 3.2.2, vendored from npm with its
// LICENSE, so the formulas render offline too); re-typesets on mkdocs-material's instant navigation.
window.MathJax = {
  tex: { inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true, processEnvironments: true },
  options: { ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex" },
  svg: { fontCache: "global" }
};
if (typeof document$ !== "undefined") {
  document$.subscribe(() => { if (window.MathJax.typesetPromise) { MathJax.typesetPromise(); } });
}
