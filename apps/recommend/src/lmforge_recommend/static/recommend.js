// The recommendation page: builds requests from the form, calls the API with the key, and lists the answers.
"use strict";

const $ = (id) => document.getElementById(id);
const liked = new Map(); // item id -> title, in the order they were added

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function call(method, path, body) {
  const key = $("key").value.trim();
  localStorage.setItem("lmforge-key", key);
  const headers = { "Content-Type": "application/json" };
  if (key) headers.Authorization = "Bearer " + key;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    throw new Error((error.field ? error.field + ": " : "") + (error.message || response.statusText));
  }
  return data;
}

function who() {
  const user = $("user").value.trim();
  const profile = $("profile").value.trim();
  return { user_id: user ? Number(user) : null, profile: profile || null };
}

function request() {
  const body = { k: Number($("k").value || 10) };
  const { user_id, profile } = who();
  if (user_id !== null) body.user_id = user_id;
  if (profile && !liked.size) body.profile = profile;
  if (liked.size) body.liked_items = [...liked.keys()];
  if ($("text").value.trim()) body.text = $("text").value.trim();
  if ($("genre").value) body.genres = [$("genre").value];
  const from = $("year-from").value, to = $("year-to").value;
  if (from || to) body.years = [Number(from || 1900), Number(to || 2100)];
  return body;
}

function renderItems(items, title) {
  $("results-title").textContent = title;
  const list = $("results");
  list.replaceChildren();
  if (!items.length) list.append(element("li", "No film matches these filters."));
  for (const item of items) {
    const row = element("li");
    row.dataset.itemId = item.item_id;
    row.append(element("div", item.title, "title"), element("div", item.genres.join(", "), "genres"));
    if (item.reason) row.append(element("div", item.reason, "reason"));
    const more = element("button", "More like this", "similar");
    more.addEventListener("click", () => similar(item));
    const like = element("button", "Like", "like");
    like.addEventListener("click", () => feedback(item, "liked"));
    const dismiss = element("button", "Not for me", "dismiss");
    dismiss.addEventListener("click", () => feedback(item, "dismissed", row));
    row.append(more, like, dismiss);
    list.append(row);
  }
}

async function recommend() {
  showError("");
  $("status").textContent = "asking...";
  try {
    const data = await call("POST", "/v1/recommend", request());
    renderItems(data.items, "Recommendations");
    $("status").textContent = data.items.length + " films";
  } catch (error) {
    $("status").textContent = "";
    showError(error.message);
  }
}

async function similar(item) {
  showError("");
  try {
    const data = await call("POST", "/v1/similar", { item_id: item.item_id, k: Number($("k").value || 10) });
    renderItems(data.items, "Films like " + item.title);
  } catch (error) {
    showError(error.message);
  }
}

async function feedback(item, action, row) {
  showError("");
  const { user_id, profile } = who();
  if (user_id === null && !profile) {
    addLiked(item.item_id, item.title);
    return;
  }
  try {
    await call("POST", "/v1/recommend/feedback", { user_id: profile ? null : user_id, profile, item_id: item.item_id, action });
    $("status").textContent = (action === "liked" ? "liked " : "dismissed ") + item.title;
    if (row && action === "dismissed") row.remove();
  } catch (error) {
    showError(error.message);
  }
}

function addLiked(id, title) {
  liked.set(id, title);
  renderLiked();
}

function renderLiked() {
  const chips = $("liked");
  chips.replaceChildren();
  for (const [id, title] of liked) {
    const chip = element("li", title);
    const remove = element("button", "×");
    remove.setAttribute("aria-label", "remove " + title);
    remove.addEventListener("click", () => { liked.delete(id); renderLiked(); });
    chip.append(remove);
    chips.append(chip);
  }
}

async function find() {
  showError("");
  const found = $("found");
  found.replaceChildren();
  try {
    const data = await call("GET", "/v1/recommend/items?q=" + encodeURIComponent($("search").value) + "&limit=8");
    for (const item of data.items) {
      const row = element("li", item.title);
      const add = element("button", "+ like", "add");
      add.addEventListener("click", () => addLiked(item.item_id, item.title));
      row.append(add);
      found.append(row);
    }
    if (!data.items.length) found.append(element("li", "no title contains that"));
  } catch (error) {
    showError(error.message);
  }
}

async function saveProfile() {
  showError("");
  const name = $("profile").value.trim();
  if (!name || !liked.size) {
    showError("profile: give a profile name and at least one liked film");
    return;
  }
  try {
    await call("POST", "/v1/recommend/profiles", { name, liked_items: [...liked.keys()] });
    $("status").textContent = "saved profile " + name;
  } catch (error) {
    showError(error.message);
  }
}

$("key").value = localStorage.getItem("lmforge-key") || "";
$("go").addEventListener("click", recommend);
$("find").addEventListener("click", find);
$("search").addEventListener("keydown", (event) => { if (event.key === "Enter") find(); });
$("save-profile").addEventListener("click", saveProfile);
