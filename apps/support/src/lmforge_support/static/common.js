// Shared by the pages: the API key (kept in this browser only) and JSON calls with it.
"use strict";
function apiKey() { return localStorage.getItem("lmforgeKey") || ""; }
function bindKey(input) {
  input.value = apiKey();
  input.addEventListener("change", () => localStorage.setItem("lmforgeKey", input.value.trim()));
}
async function api(path, body, method) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey()) headers.Authorization = "Bearer " + apiKey();
  const res = await fetch(path, { method: method || (body === undefined ? "GET" : "POST"), headers,
                                  body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error((data && data.error && data.error.message) || ("HTTP " + res.status));
  return data;
}
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}
