// The customer's chat: start a conversation, send messages, show replies, options, handoff and thumbs.
"use strict";
const log = document.getElementById("log"), typing = document.getElementById("typing"), errorBox = document.getElementById("error");
let conversation = sessionStorage.getItem("supportConversation"), seen = 0, counter = 0;

function show(role, text, turn) {
  const div = el("div", "turn " + role, turn && turn.span ? undefined : text);
  if (turn && turn.span) {  // the part of the answer that answers the question (extractive QA), marked
    const { start, end } = turn.span;
    div.append(text.slice(0, start), el("mark", "span", text.slice(start, end)), text.slice(end));
  }
  if (turn && turn.kind === "handoff") div.classList.add("notice");
  if (turn && turn.options && turn.options.length) {
    const row = el("div", "options");
    turn.options.forEach((o, i) => {
      const b = el("button", "", (i + 1) + ". " + o.label);
      b.type = "button";
      b.addEventListener("click", () => send(String(i + 1)));
      row.appendChild(b);
    });
    div.appendChild(row);
  }
  if (turn && turn.turn_id && role === "bot") {
    const meta = el("div", "meta", turn.intent ? turn.intent + " · " + Math.round((turn.confidence || 0) * 100) + "% " : "");
    [["up", 1, "▲ helpful"], ["down", -1, "▼ not helpful"]].forEach(([name, value, face]) => {
      const b = el("button", "thumb-" + name, face);
      b.type = "button";
      b.title = "thumbs " + name;
      b.addEventListener("click", async () => {
        await api("/v1/support/conversations/" + conversation + "/feedback", { turn_id: turn.turn_id, value });
        meta.querySelectorAll("button").forEach((x) => x.classList.remove("on"));
        b.classList.add("on");
      });
      meta.appendChild(b);
    });
    div.appendChild(meta);
  }
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
}

async function start() {
  if (conversation) return;
  const r = await api("/v1/support/conversations", { language: navigator.language.startsWith("zh") ? "zh" : "en" });
  conversation = r.conversation_id;
  sessionStorage.setItem("supportConversation", conversation);
  show("bot", r.greeting);
}

async function send(text) {
  errorBox.textContent = "";
  try {
    await start();
    show("customer", text);
    typing.textContent = "Assistant is typing…";
    const r = await api("/v1/support/conversations/" + conversation + "/messages",
                        { text, message_id: Date.now() + "-" + (counter++) });
    show("bot", r.text, r);
  } catch (e) {
    errorBox.textContent = e.message;
  } finally {
    typing.textContent = "";
  }
}

async function poll() {
  // Agents' replies arrive while the conversation is with a person.
  if (!conversation) return;
  try {
    const t = await api("/v1/support/conversations/" + conversation);
    const agents = t.turns.filter((x) => x.role === "agent");
    agents.slice(seen).forEach((x) => show("agent", "Agent: " + x.text));
    seen = agents.length;
  } catch (e) { /* the next poll retries */ }
}

bindKey(document.getElementById("key"));
document.getElementById("form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = document.getElementById("text"), text = input.value.trim();
  if (!text) { errorBox.textContent = "Type a question first."; return; }
  input.value = "";
  send(text);
});
if (conversation) api("/v1/support/conversations/" + conversation).then((t) => {
  t.turns.forEach((x) => show(x.role, (x.role === "agent" ? "Agent: " : "") + x.text, x.role === "bot" ? { ...x, turn_id: x.id } : null));
  seen = t.turns.filter((x) => x.role === "agent").length;
}).catch(() => { sessionStorage.removeItem("supportConversation"); conversation = null; });
setInterval(poll, 3000);
