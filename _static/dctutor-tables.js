// Right-align the columns of a table that hold numbers only (see _static/dctutor.css): a number
// may carry a sign, thousands separators, a decimal point, %, ± and a second number, or be a dash.
// A last column of long text (notes, references) is marked too, so that it gets room to wrap.
document.addEventListener("DOMContentLoaded", () => {
  const numeric = /^[−–+-]?[\d,]*\.?\d+(e[−+-]?\d+)?\s*%?(\s*±\s*[\d,]*\.?\d+\s*%?)?$/i;
  const empty = /^(|—|–|-|nan|n\/a)$/i;
  for (const table of document.querySelectorAll(".bd-article table")) {
    const rows = [...table.querySelectorAll("tbody tr")];
    if (!rows.length) continue;
    const width = Math.max(...rows.map(r => r.cells.length));
    for (let c = 0; c < width; c++) {
      const cells = rows.map(r => r.cells[c]).filter(Boolean);
      const texts = cells.map(td => td.textContent.trim());
      if (cells.some(td => td.tagName === "TH") || !texts.some(t => numeric.test(t))) continue;
      if (!texts.every(t => numeric.test(t) || empty.test(t))) continue;
      const head = [...table.querySelectorAll("thead tr")].map(r => r.cells[c]).filter(Boolean);
      for (const cell of [...cells, ...head]) {
        if (!/text-(left|center|right)/.test(cell.className)) cell.classList.add("dctutor-num");
      }
    }
    const last = rows.map(r => r.cells[r.cells.length - 1]).filter(td => td && td.tagName === "TD");
    if (width > 1 && last.some(td => td.textContent.trim().length > 40)) {
      for (const td of last) td.classList.add("dctutor-words");
    }
  }
});
