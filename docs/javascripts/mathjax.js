// MathJax configuration for pymdownx.arithmatex (generic mode) and for notebooks.
//
// Markdown pages and docstrings reach the browser as arithmatex output, `\(...\)` and
// `\[...\]` inside `.arithmatex` elements. Notebook pages are rendered by nbconvert
// (mkdocs-jupyter), which leaves `$...$` and `$$...$$` as they are and wraps nothing in
// `.arithmatex` (mkdocs-jupyter issue #227), so the usual arithmatex-only setup
// (`ignoreHtmlClass: ".*|"`) would leave notebook math untypeset. Hence the dollar
// delimiters and the default document-wide processing; `pre` and `code` (code cells,
// code spans) are skipped by MathJax's default `skipHtmlTags`.
window.MathJax = {
  tex: {
    inlineMath: [
      ["\\(", "\\)"],
      ["$", "$"],
    ],
    displayMath: [
      ["\\[", "\\]"],
      ["$$", "$$"],
    ],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: "tex2jax_ignore",
    processHtmlClass: "arithmatex|tex2jax_process",
  },
};

// Re-typeset after mkdocs-material's instant navigation swaps the page content.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    MathJax.startup.output.clearCache();
    MathJax.typesetClear();
    MathJax.texReset();
    MathJax.typesetPromise();
  });
}
