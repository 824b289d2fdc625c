// lmforge studio: the pages' behaviour. Plain JavaScript, no build step; charts by the vendored Chart.js.
"use strict";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];
const HEADLINE = ["accuracy", "macro_f1", "f1", "exact_match", "micro_f1", "pearson", "perplexity"];

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else if (key === "style") node.style.cssText = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    const detail = Array.isArray(data.detail) ? data.detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ") : "";
    throw new Error(error.message || detail || `${response.status} ${response.statusText}`);
  }
  return data;
}

// ---- charts -------------------------------------------------------------------------------------

function chartSpecs(curveSets, separateEval) {
  const has = (split, key) => curveSets.some((c) => c[split] && c[split][key]);
  const specs = [];
  const loss = [["train", "loss"], ["eval", "loss"]].filter(([s, k]) => has(s, k));
  if (loss.length) specs.push({title: "loss", series: loss});
  const evalKeys = [...new Set(curveSets.flatMap((c) => Object.keys(c.eval || {})))].filter((k) => !["loss", "nll"].includes(k));
  evalKeys.sort((a, b) => (HEADLINE.indexOf(a) + 1 || 99) - (HEADLINE.indexOf(b) + 1 || 99));
  if (separateEval) evalKeys.slice(0, 6).forEach((k) => specs.push({title: `eval ${k}`, series: [["eval", k]]}));
  else if (evalKeys.length) specs.push({title: "evaluation metrics", series: evalKeys.map((k) => ["eval", k])});
  if (has("train", "lr")) specs.push({title: "learning rate", series: [["train", "lr"]]});
  const other = [...new Set(curveSets.flatMap((c) => Object.keys(c.train || {})))].filter((k) => !["loss", "lr"].includes(k));
  other.forEach((k) => specs.push({title: `train ${k}`, series: [["train", k]]}));
  for (const split of new Set(curveSets.flatMap((c) => Object.keys(c)))) {
    if (split === "train" || split === "eval") continue;
    Object.keys(curveSets.find((c) => c[split])[split]).forEach((k) => specs.push({title: `${split} ${k}`, series: [[split, k]]}));
  }
  return specs;
}

function drawCharts(container, curveSets, names) {
  if (!container || typeof Chart === "undefined") return 0;
  const compare = curveSets.length > 1;
  let count = 0;
  chartSpecs(curveSets, compare).forEach((spec) => {
    const datasets = [];
    curveSets.forEach((curves, r) => spec.series.forEach(([split, key], s) => {
      const points = (curves[split] || {})[key];
      if (!points) return;
      const color = COLORS[(compare ? r : s) % COLORS.length];
      const label = compare ? `${names[r]} · ${split} ${key}` : `${split} ${key}`;
      datasets.push({label, data: points.map(([x, y]) => ({x, y})), borderColor: color, backgroundColor: color,
                     borderDash: split === "eval" && spec.series.length > 1 && compare ? [5, 3] : [], pointRadius: points.length > 60 ? 0 : 2,
                     borderWidth: 1.5, tension: 0.15});
    }));
    if (!datasets.length) return;
    const canvas = el("canvas", {"aria-label": spec.title, role: "img"});
    container.append(el("div", {class: "chart-box", "data-chart": spec.title}, canvas));
    new Chart(canvas, {
      type: "line", data: {datasets},
      options: {animation: false, maintainAspectRatio: false, parsing: true, interaction: {mode: "nearest", intersect: false},
                plugins: {title: {display: true, text: spec.title}, legend: {position: "bottom", labels: {boxWidth: 12}}},
                scales: {x: {type: "linear", title: {display: true, text: "step"}}, y: {type: spec.title === "learning rate" ? "linear" : "linear"}}},
    });
    count += 1;
  });
  document.body.dataset.charts = String(count);
  return count;
}

function readJson(id) { const node = $(id); return node ? JSON.parse(node.textContent) : null; }

// ---- runs table ---------------------------------------------------------------------------------

function initRuns() {
  const rows = [...document.querySelectorAll("#runs tbody tr")];
  const text = $("filter-text"), kind = $("filter-kind"), task = $("filter-task"), status = $("filter-status");
  const apply = () => {
    const q = text.value.trim().toLowerCase();
    rows.forEach((row) => {
      const show = (!q || row.dataset.text.toLowerCase().includes(q)) && (!kind.value || row.dataset.kind === kind.value)
        && (!task.value || row.dataset.task === task.value) && (!status.value || row.dataset.status === status.value);
      row.hidden = !show;
    });
  };
  [text, kind, task, status].forEach((input) => input.addEventListener("input", apply));
  const button = $("compare-selected");
  const picked = () => [...document.querySelectorAll("input.pick:checked")].map((box) => box.value);
  document.querySelectorAll("input.pick").forEach((box) => box.addEventListener("change", () => { button.disabled = picked().length < 2; }));
  button.addEventListener("click", () => {
    location.href = "/compare?" + picked().map((id) => "runs=" + encodeURIComponent(id)).join("&");
  });
}

// ---- playground ---------------------------------------------------------------------------------

function showError(node, error) { node.textContent = error ? String(error.message || error) : ""; }

function probabilityRows(result) {
  const box = el("div", {class: "probs"});
  const probs = Object.entries(result.probabilities || {}).sort((a, b) => b[1] - a[1]);
  probs.forEach(([label, p], i) => box.append(el("div", {class: "prob" + (i === 0 ? " top" : "")},
    el("b", {}, label), el("div", {class: "bar"}, el("span", {style: `width:${(100 * p).toFixed(1)}%`})), `${(100 * p).toFixed(1)}%`)));
  return box;
}

function highlighted(text, spans) {
  const box = el("div", {class: "generated"});
  let pos = 0;
  spans.slice().sort((a, b) => a.start - b.start).forEach((span) => {
    box.append(text.slice(pos, span.start));
    box.append(el("mark", {class: "entity", title: span.score != null ? `score ${span.score}` : ""}, text.slice(span.start, span.end), el("sub", {}, span.type || "answer")));
    pos = span.end;
  });
  box.append(text.slice(pos));
  return box;
}

function renderPrediction(data, text, pair) {
  const out = $("pg-result");
  out.replaceChildren();
  const r = data.result;
  if (data.operation === "generate") out.append(el("div", {class: "generated", id: "pg-generated"}, r.generated));
  else if (data.operation === "embed") out.append(el("p", {}, `a ${r.dimensions}-dimensional unit vector: [${r.head.join(", ")}, …]`));
  else if (Array.isArray(r.entities)) {
    out.append(el("p", {class: "predicted"}, `${r.entities.length} entit${r.entities.length === 1 ? "y" : "ies"}`), highlighted(text, r.entities));
  } else if ("answer" in r && typeof r.answer === "string") {
    out.append(el("p", {class: "predicted"}, r.answer || "(no answer)"));
    if (pair && r.start != null && r.answer) out.append(highlighted(pair, [{start: r.start, end: r.end, type: "answer", score: r.score}]));
  } else if ("label" in r || "labels" in r) {
    const label = Array.isArray(r.labels) ? r.labels.join(", ") || "(none)" : r.label;
    out.append(el("p", {class: "predicted", id: "pg-label"}, label), probabilityRows(r));
  } else if ("generated" in r) out.append(el("div", {class: "generated", id: "pg-generated"}, r.generated));
  else out.append(el("pre", {}, JSON.stringify(r, null, 2)));
  $("pg-latency").textContent = `${data.latency_ms} ms`;
}

function initPlayground() {
  const select = $("pg-run");
  if (!select) return;
  const predict = $("pg-predict"), generate = $("pg-generate"), explain = $("pg-explain"), method = $("pg-explain-method");
  const error = $("pg-error");
  let info = null;
  const load = async () => {
    [predict, generate, explain].forEach((b) => { b.disabled = true; });
    $("pg-info").textContent = "loading the run…";
    showError(error, null);
    try {
      info = await api("/api/models/" + encodeURI(select.value));
      const ops = info.operations || [];
      $("pg-info").textContent = `${info.kind}${info.labels ? " · labels: " + info.labels.join(", ") : ""} · can ${ops.join(", ")}`;
      predict.hidden = !(ops.includes("classify") || ops.includes("embed") || (!ops.includes("generate")));
      generate.hidden = !ops.includes("generate");
      $("pg-gen-options").hidden = !ops.includes("generate");
      $("pg-pair-label").hidden = !info.pair;
      explain.hidden = method.hidden = !(info.explain || []).length;
      method.replaceChildren(...(info.explain || []).map((m) => el("option", {value: m}, m.replace("_", " "))));
      [predict, generate, explain].forEach((b) => { b.disabled = false; });
      document.body.dataset.ready = select.value;
    } catch (e) { $("pg-info").textContent = ""; showError(error, e); }
  };
  select.addEventListener("change", () => { history.replaceState(null, "", "?run=" + encodeURIComponent(select.value)); load(); });
  $("pg-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) file.text().then((content) => { $("pg-text").value = content.slice(0, 20000); });
  });
  predict.addEventListener("click", async () => {
    const text = $("pg-text").value, pair = info && info.pair ? $("pg-pair").value : null;
    showError(error, null);
    predict.disabled = true;
    try { renderPrediction(await api("/api/predict", {run: select.value, text, pair: pair || null}), text, pair); }
    catch (e) { showError(error, e); }
    predict.disabled = false;
  });
  generate.addEventListener("click", () => {
    showError(error, null);
    const out = el("div", {class: "generated", id: "pg-generated"});
    $("pg-result").replaceChildren(out);
    const params = new URLSearchParams({run: select.value, prompt: $("pg-text").value,
      max_new_tokens: $("pg-max-tokens").value, temperature: $("pg-temperature").value});
    const started = performance.now();
    let first = null;
    const source = new EventSource("/api/generate?" + params);
    generate.disabled = true;
    const finish = () => { source.close(); generate.disabled = false; };
    source.onmessage = (event) => {
      if (first === null) first = performance.now() - started;
      out.append(JSON.parse(event.data).text);
      $("pg-latency").textContent = `first piece ${first.toFixed(0)} ms · ${(performance.now() - started).toFixed(0)} ms so far`;
    };
    source.addEventListener("done", () => {
      $("pg-latency").textContent = `first piece ${(first || 0).toFixed(0)} ms · total ${(performance.now() - started).toFixed(0)} ms`;
      out.dataset.done = "1";
      finish();
    });
    source.addEventListener("error", (event) => {
      if (event.data) showError(error, JSON.parse(event.data).message);
      else if (!out.dataset.done) showError(error, "the stream was interrupted");
      finish();
    });
  });
  explain.addEventListener("click", async () => {
    showError(error, null);
    explain.disabled = true;
    try {
      const data = await api("/api/explain", {run: select.value, text: $("pg-text").value, method: method.value});
      const box = el("div", {id: "pg-explained"});
      box.innerHTML = data.html;  // built by lmforge.evaluation.explain.to_html, which escapes the text
      const table = el("table", {class: "grid"}, el("thead", {}, el("tr", {}, el("th", {}, "word"), el("th", {}, "score"))));
      const body = el("tbody");
      data.explanation.words.forEach((w, i) => body.append(el("tr", {}, el("td", {}, w), el("td", {class: "num"}, data.explanation.scores[i].toFixed(4)))));
      table.append(body);
      $("pg-explanation").replaceChildren(el("h2", {}, `Why ${data.explanation.label} (${data.latency_ms} ms)`), box,
        el("details", {}, el("summary", {}, "scores"), table));
    } catch (e) { showError(error, e); }
    explain.disabled = false;
  });
  load();
}

// ---- launch -------------------------------------------------------------------------------------

function formBody(form) {
  const fields = {};
  let overrides = [];
  new FormData(form).forEach((value, key) => {
    if (key === "overrides") overrides = String(value).split("\n").filter((line) => line.trim());
    else if (String(value).trim()) fields[key] = String(value);
  });
  return {fields, overrides};
}

function initLaunch() {
  const form = $("launch-form");
  if (!form) return;
  let timer = null, polling = null;
  const preview = async () => {
    const body = formBody(form);
    if (!body.fields["data.train"]) { $("launch-yaml").textContent = "name the training data to see the config"; return; }
    try { $("launch-yaml").textContent = (await api("/api/launch/preview", body)).yaml; showError($("launch-error"), null); }
    catch (e) { showError($("launch-error"), e); }
  };
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(preview, 300); });
  const show = (job) => {
    $("job").hidden = false;
    $("job-id").textContent = job.id;
    $("job-state").textContent = job.state;
    $("job-log").textContent = job.log.join("\n");
    $("job-log").scrollTop = $("job-log").scrollHeight;
    if (job.progress) { $("job-progress").value = job.progress.fraction; $("job-steps").textContent = `step ${job.progress.step} of ${job.progress.total}`; }
    $("job-stop").disabled = job.state !== "running";
    $("job-stop").dataset.job = job.id;
    document.body.dataset.jobState = job.state;
    if (job.state !== "running") {
      clearInterval(polling);
      if (job.run_id) {
        const link = $("job-run");
        link.hidden = false;
        link.href = "/run/" + encodeURI(job.run_id);
        link.textContent = "open the run " + job.run_id;
      }
    }
  };
  const follow = (id) => {
    clearInterval(polling);
    const poll = async () => { try { show(await api("/api/jobs/" + encodeURIComponent(id))); } catch (e) { showError($("launch-error"), e); clearInterval(polling); } };
    poll();
    polling = setInterval(poll, 1000);
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("launch-error"), null);
    try { const job = await api("/api/launch", formBody(form)); $("launch-yaml").textContent = job.config; follow(job.id); }
    catch (e) { showError($("launch-error"), e); }
  });
  $("job-stop").addEventListener("click", async () => { try { show(await api(`/api/jobs/${encodeURIComponent($("job-stop").dataset.job)}/stop`, {})); } catch (e) { showError($("launch-error"), e); } });
  document.querySelectorAll("#jobs a[data-job]").forEach((a) => a.addEventListener("click", (event) => { event.preventDefault(); follow(a.dataset.job); }));
  preview();
}

// ---- sign-in ------------------------------------------------------------------------------------

function initLogin() {
  const form = $("login-form");
  if (form) form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try { await api("/api/login", {key: new FormData(form).get("key")}); location.href = form.dataset.next || "/"; }
    catch (e) { $("login-error").textContent = e.message; }
  });
  const out = $("logout");
  if (out) out.addEventListener("click", async () => { await fetch("/api/logout", {method: "POST"}); location.href = "/login"; });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  initLogin();
  if (page === "runs") initRuns();
  if (page === "run") { const data = readJson("run-data"); drawCharts($("charts"), [data.curves], [data.id]); }
  if (page === "compare") drawCharts($("charts"), readJson("compare-data") || [], readJson("compare-names") || []);
  if (page === "playground") initPlayground();
  if (page === "launch") initLaunch();
});
