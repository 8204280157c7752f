// Chat page: send a message, follow its run over SSE, show the answer and the memories it used;
// close a thread and show what the archivist wrote. All text goes in through textContent.
import { api, el, followRun } from "./common.js";

const chat = document.getElementById("chat");
const messages = document.getElementById("messages");
const composer = document.getElementById("composer");
const input = document.getElementById("message");
const errorBox = document.getElementById("chat-error");

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = !text;
}

function messageItem(role, text, runId) {
  const li = el("li", { className: `msg ${role}` });
  const meta = el("div", { className: "meta" }, [el("span", { className: "role", text: role })]);
  if (runId) meta.append(runLink(runId));
  li.append(meta, el("div", { className: "text", text }));
  messages.append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

function runLink(runId) {
  return el("a", { className: "small run-link", href: `/ui/runs/${runId}`, text: "inspect run" });
}

function usedList(memories) {
  const details = el("details", { className: "used", open: true });
  const n = memories.length;
  details.append(el("summary", { text: `${n} memor${n === 1 ? "y" : "ies"} used` }));
  const list = el("ol");
  for (const m of memories) {
    const item = el("li", {}, [
      el("span", { className: "mem-text", text: m.text }),
      el("span", { className: "muted small", text: ` rank ${m.rank} · score ${m.score.toFixed(3)} ` }),
    ]);
    if (m.source_thread_id) {
      const anchor = m.source_message_ids.length ? `#m-${m.source_message_ids[0]}` : "";
      const href = `/ui/chat?thread=${encodeURIComponent(m.source_thread_id)}${anchor}`;
      item.append(el("a", { className: "small", href, text: "source" }));
    }
    list.append(item);
  }
  details.append(list);
  return details;
}

async function showAnswer(runId) {
  const run = await api(`/v1/runs/${runId}`);
  const text = run.answer ?? (run.error ? `Run failed: ${run.error}` : "(no answer)");
  const li = messageItem("assistant", text, runId);
  if (run.status === "FAILED") li.classList.add("failed");
  const used = run.memories.filter((m) => m.used);
  if (used.length) li.append(usedList(used));
}

// The first message of a new conversation made a thread (titled by its first line, as the API does).
function setThread(threadId, text) {
  if (chat.dataset.thread === threadId) return;
  chat.dataset.thread = threadId;
  history.replaceState(null, "", `/ui/chat?thread=${encodeURIComponent(threadId)}`);
  const title = text.split("\n")[0].slice(0, 80);
  document.getElementById("thread-title").textContent = title;
  for (const link of document.querySelectorAll(".thread-link.active")) link.classList.remove("active");
  const link = el("a", { className: "thread-link active", href: `/ui/chat?thread=${encodeURIComponent(threadId)}` }, [
    el("span", { className: "title", text: title }),
    el("span", { className: "muted small", text: "new" }),
  ]);
  document.getElementById("no-threads")?.remove();
  document.getElementById("thread-list").prepend(el("li", {}, [link]));
}

// A message to a closed thread reopens it (as the API does).
function markOpen() {
  const state = document.getElementById("thread-state");
  state.textContent = "open";
  state.className = "pill open";
  state.hidden = false;
  const button = document.getElementById("close-thread");
  button.hidden = false;
  button.disabled = false;
}

async function send(text) {
  const body = { message: text };
  if (chat.dataset.thread) body.thread_id = chat.dataset.thread;
  const sent = await api("/v1/chat?wait=false", { method: "POST", body });
  setThread(sent.thread_id, text);
  markOpen();
  const li = messageItem("user", text, sent.run_id);
  const strip = el("div", { className: "run-status", dataset: { run: sent.run_id } });
  li.append(strip);
  const final = await followRun(sent.run_id, strip);
  await showAnswer(sent.run_id);
  return final;
}

composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  composer.classList.add("busy");
  input.disabled = true;
  showError("");
  try {
    await send(text);
    input.value = "";
  } catch (err) {
    showError(String(err.message || err));
  } finally {
    input.disabled = false;
    composer.classList.remove("busy");
    input.focus();
  }
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) composer.requestSubmit();
});

// A run still in flight when the page was rendered: follow it, then reload to show its answer.
for (const strip of document.querySelectorAll(".run-status[data-live]")) {
  followRun(strip.dataset.run, strip).then(() => location.reload());
}

// Closing a thread queues the archivist; poll its state until the job is done.
const closeButton = document.getElementById("close-thread");
closeButton.addEventListener("click", () => closeThread().catch((e) => showError(String(e.message || e))));

async function closeThread() {
  const threadId = chat.dataset.thread;
  const panel = document.getElementById("archive");
  closeButton.disabled = true;
  await api(`/v1/threads/${threadId}/close`, { method: "POST" });
  const state = document.getElementById("thread-state");
  state.textContent = "closed";
  state.className = "pill closed";
  closeButton.hidden = true;
  panel.hidden = false;
  panel.dataset.state = "pending";
  document.getElementById("archive-note").textContent = "The archivist is reading this thread…";
  const done = await pollArchive(threadId);
  showArchive(panel, done);
}

async function pollArchive(threadId) {
  const deadline = Date.now() + 120000;
  for (;;) {
    const state = await api(`/ui/chat/${threadId}/archive`);
    if (!state.pending || Date.now() > deadline) return state;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

function showArchive(panel, state) {
  const list = document.getElementById("archive-list");
  list.replaceChildren(...state.memories.map((m) => el("li", { className: "mem-text", text: m.text })));
  const n = state.memories.length;
  const note = state.pending ? "Still archiving; reload later." : `${n} memor${n === 1 ? "y" : "ies"}.`;
  document.getElementById("archive-note").textContent = note;
  panel.dataset.state = state.pending ? "pending" : "done";
}
