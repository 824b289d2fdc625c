// Dashboard: fetches the monitor's JSON routes with the key kept in localStorage and draws plain SVG charts.
"use strict";
const $ = (id) => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";

function headers() {
  const key = localStorage.getItem("monitorKey");
  return key ? { Authorization: "Bearer " + key } : {};
}

async function get(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error((body.error && body.error.message) || response.statusText);
  }
  return response.json();
}

function when(ts) { return new Date(ts * 1000).toISOString().slice(0, 16).replace("T", " "); }

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function chart(svg, points, value, lo, hi, kind) {
  svg.replaceChildren();
  const [w, h, pad] = [640, Number(svg.getAttribute("viewBox").split(" ")[3]), 24];
  if (!points.length) { svg.append(el("svg:text", { x: 10, y: 20 }, "no data yet")); return; }
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1);
  const x = (t) => pad + (w - 2 * pad) * (t - t0) / (t1 - t0);
  const y = (v) => h - pad - (h - 2 * pad) * (v - lo) / (hi - lo || 1);
  svg.append(el("svg:line", { x1: pad, x2: w - pad, y1: y(kind === "line" ? 0 : lo), y2: y(kind === "line" ? 0 : lo), stroke: "#bbb" }));
  svg.append(el("svg:text", { x: 2, y: 12, "font-size": 10 }, String(hi)));
  svg.append(el("svg:text", { x: 2, y: h - 4, "font-size": 10 }, when(t0).slice(0, 10) + " ... " + when(t1).slice(0, 10)));
  if (kind === "line") {
    const d = points.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + " " + y(value(p)).toFixed(1)).join(" ");
    svg.append(el("svg:path", { d, fill: "none", stroke: "#1d3557", "stroke-width": 1.5, class: "series" }));
    for (const p of points) {
      const dot = el("svg:circle", { cx: x(p.t), cy: y(value(p)), r: 2.5, class: value(p) < 0 ? "negative" : "positive", fill: "currentColor" });
      dot.append(el("svg:title", {}, when(p.t) + ": " + value(p).toFixed(2) + " (" + p.n + ")"));
      svg.append(dot);
    }
  } else {
    const bw = Math.max(1, (w - 2 * pad) / points.length - 1);
    for (const p of points) {
      const bar = el("svg:rect", { x: x(p.t) - bw / 2, y: y(value(p)), width: bw, height: y(lo) - y(value(p)), fill: "#457b9d", class: "bar" });
      bar.append(el("svg:title", {}, when(p.t) + ": " + p.n));
      svg.append(bar);
    }
  }
}

function itemLine(item) {
  const li = el("li", { class: "item" });
  li.append(el("span", { class: "when" }, when(item.ts) + " · " + item.source + " "));
  li.append(el("b", { class: item.label }, item.label + " " + item.score.toFixed(2) + " "));
  li.append(el("span", {}, item.text.slice(0, 240)));
  for (const m of item.mentions) li.append(el("span", { class: "when " + m.label }, " [" + m.entity + " " + m.score.toFixed(2) + "]"));
  const why = el("button", { class: "why-button", type: "button", title: "the words that drove the score" }, "why?");
  why.addEventListener("click", (event) => { event.stopPropagation(); explain(item.id, li, why); });
  li.append(" ", why);
  return li;
}

// Word attributions of an item's sentences: green words push towards the sentence's label, red ones against it.
async function explain(id, li, button) {
  button.disabled = true;
  button.textContent = "...";
  try {
    const found = await get("/v1/monitor/items/" + id + "/explain");
    const box = el("div", { class: "why" });
    for (const s of found.sentences) {
      const line = el("p", {}, "");
      line.append(el("b", { class: s.label }, s.label + " "));
      const top = Math.max(1e-9, ...s.scores.map(Math.abs));
      s.words.forEach((word, i) => {
        const share = s.scores[i] / top;
        const span = el("span", { class: share > 0.05 ? "up" : share < -0.05 ? "down" : "flat",
                                  title: s.scores[i].toFixed(3) }, word);
        span.style.opacity = String(0.45 + 0.55 * Math.abs(share));
        line.append(span, " ");
      });
      box.append(line);
    }
    li.append(box);
    button.remove();
  } catch (error) {
    button.textContent = "why? (" + error.message + ")";
  }
}

async function refresh() {
  const entity = $("entity").value, bucket = $("bucket").value;
  const query = (entity ? "entity=" + encodeURIComponent(entity) + "&" : "");
  const [series, items, alerts, stats, found] = await Promise.all([
    get("/v1/monitor/series?" + query + "bucket=" + bucket), get("/v1/monitor/items?" + query + "limit=30"),
    get("/v1/monitor/alerts?" + query + "limit=30"), get("/v1/monitor/stats"), get("/v1/monitor/candidates?limit=10")]);
  $("candidates").replaceChildren(...(found.ner
    ? (found.candidates.length ? found.candidates.map((c) => {
        const li = el("li", { class: "candidate" });
        li.append(el("b", {}, c.name), el("span", { class: "when" }, " " + c.type + " · " + c.items + " items · last " + when(c.last_ts)));
        li.title = c.example || "";
        return li;
      }) : [el("li", { class: "when" }, "no organization outside the watchlist yet")])
    : [el("li", { class: "when" }, "set entities.ner_run in config.yaml to list organizations the watchlist misses")]));
  chart($("sentiment"), series.points, (p) => p.mean, -1, 1, "line");
  chart($("volume"), series.points, (p) => p.n, 0, Math.max(1, ...series.points.map((p) => p.n)), "bars");
  $("items").replaceChildren(...items.map(itemLine));
  $("alerts").replaceChildren(...alerts.map((a) => {
    const li = el("li", { class: "alert" });
    li.append(el("span", { class: "when" }, when(a.ts) + " "), el("b", {}, a.message));
    const linked = el("ul", { class: "linked" });
    linked.append(...a.items.map(itemLine));
    li.append(linked);
    li.addEventListener("click", () => li.classList.toggle("open"));
    return li;
  }));
  const rejected = Object.entries(stats.rejected).map(([k, v]) => k + " " + v).join(", ") || "none";
  $("stats").textContent = stats.items + " items, " + stats.mentions + " mentions, " + stats.alerts + " alerts; skipped or repaired: " + rejected;
  $("status").textContent = "";
}

async function start() {
  try {
    const entities = await get("/v1/monitor/entities");
    $("entity").replaceChildren(el("option", { value: "" }, "all items"),
      ...entities.map((e) => el("option", { value: e.ticker }, e.name + " (" + e.ticker + ") · " + e.mentions)));
    await refresh();
  } catch (error) {
    $("status").textContent = error.message;
  }
}

$("keyform").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem("monitorKey", $("key").value.trim());
  $("key").value = "";
  start();
});
$("entity").addEventListener("change", () => refresh().catch((e) => { $("status").textContent = e.message; }));
$("bucket").addEventListener("change", () => refresh().catch((e) => { $("status").textContent = e.message; }));
start();
setInterval(() => { if (!document.hidden) refresh().catch(() => {}); }, 10000);
