// The agent's view: the queue of handed-off conversations, a transcript, and a reply box.
"use strict";
const errorBox = document.getElementById("error");
let current = null;

async function refresh() {
  errorBox.textContent = "";
  try {
    const q = await api("/v1/support/queue"), body = document.getElementById("queue");
    body.replaceChildren();
    q.conversations.forEach((c) => {
      const tr = el("tr", "queued-row");
      const link = el("a", "", c.id.slice(0, 8));
      link.href = "#";
      link.addEventListener("click", (ev) => { ev.preventDefault(); open(c.id); });
      const td = el("td");
      td.appendChild(link);
      tr.append(td, el("td", "", c.status), el("td", "", c.reason), el("td", "", c.since));
      body.appendChild(tr);
    });
  } catch (e) { errorBox.textContent = e.message; }
}

async function open(id) {
  current = id;
  const t = await api("/v1/support/agent/conversations/" + id), box = document.getElementById("transcript");
  document.getElementById("title").textContent = "Conversation " + id.slice(0, 8) + " (" + t.status + ")";
  box.replaceChildren();
  t.turns.forEach((x) => box.appendChild(el("div", "turn " + x.role, x.role + ": " + x.text)));
  box.scrollTop = box.scrollHeight;
}

bindKey(document.getElementById("key"));
document.getElementById("refresh").addEventListener("click", refresh);
document.getElementById("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("text"), text = input.value.trim();
  if (!current || !text) { errorBox.textContent = "Pick a conversation and type a reply."; return; }
  try {
    await api("/v1/support/agent/conversations/" + current + "/reply", { text });
    input.value = "";
    await open(current);
    await refresh();
  } catch (e) { errorBox.textContent = e.message; }
});
document.getElementById("close").addEventListener("click", async () => {
  if (!current) return;
  await api("/v1/support/agent/conversations/" + current + "/close", {});
  await refresh();
  await open(current);
});
refresh();
