// The analytics page: rates, intent distribution (bars), feedback by day, unsure messages, CSV export.
"use strict";
function row(body, cells) {
  const tr = el("tr");
  cells.forEach((c) => { const td = el("td"); if (c instanceof Node) td.appendChild(c); else td.textContent = c; tr.appendChild(td); });
  body.appendChild(tr);
}
const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%");

async function load() {
  try {
    const s = await api("/v1/support/analytics");
    const rates = document.getElementById("rates");
    rates.replaceChildren();
    [["Conversations", s.conversations], ["Containment", pct(s.containment)], ["Fallback rate", pct(s.fallback_rate)],
     ["Handoff rate", pct(s.handoff_rate)], ["Thumbs up / down", s.feedback.up + " / " + s.feedback.down]]
      .forEach((r) => row(rates, r));
    const intents = document.getElementById("intents"), top = Math.max(1, ...Object.values(s.intents));
    intents.replaceChildren();
    Object.entries(s.intents).forEach(([name, n]) => {
      const bar = el("span", "bar");
      bar.style.width = (12 * n / top) + "rem";
      row(intents, [name, String(n), bar]);
    });
    const days = document.getElementById("days");
    days.replaceChildren();
    Object.entries(s.by_day).forEach(([d, c]) => row(days, [d, (c.turns || 0) + " replies", (c.up || 0) + " up", (c.down || 0) + " down",
                                                              (c.low_confidence || 0) + " unsure"]));
    const low = document.getElementById("low");
    low.replaceChildren();
    s.low_confidence_examples.forEach((x) => row(low, [x.text, x.intent || "", String(x.confidence)]));
  } catch (e) { document.getElementById("error").textContent = e.message; }
}

document.getElementById("export").addEventListener("click", async () => {
  const text = await api("/v1/support/export.csv");
  const a = el("a");
  a.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  a.download = "support_to_label.csv";
  a.click();
});
bindKey(document.getElementById("key"));
load();
