// Chat page: send a message, follow its run over SSE, show the answer and the memories it used;
// close a thread and show what the archivist wrote. All text goes in through textContent.
import { api, el, followRun } from "./common.js";

const chat = document.getElementById("chat");
const messages = document.getElementById("messages");
const composer = document.getElementById("composer");
const input = document.getElementById("message");
const errorBox = document.getElementById("chat-error");
const note = document.getElementById("chat-note");
const counter = document.getElementById("message-count");
const LIMIT = Number(chat.dataset.limit);
const COUNT_FROM = 0.9; // the counter shows from 90 % of the limit on

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = !text;
}

function showNote(text) {
  note.textContent = text;
  note.hidden = !text;
}

// Characters as the API counts them (code points). Nothing is cut here: the API refuses a
// message over its limit (422) and the page shows that refusal, keeping what was written.
function countCharacters() {
  const text = input.value;
  const n = text.length < LIMIT * COUNT_FROM ? text.length : [...text].length;
  counter.hidden = n < LIMIT * COUNT_FROM;
  const over = n - LIMIT;
  counter.classList.toggle("over", over > 0);
  counter.textContent =
    over > 0
      ? `${over.toLocaleString("en")} over the limit of ${LIMIT.toLocaleString("en")} characters`
      : `${n.toLocaleString("en")} / ${LIMIT.toLocaleString("en")} characters`;
}

input.addEventListener("input", countCharacters);

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
  const details = el("details", { className: "used" }); // collapsed, as on a reloaded page
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
  document.getElementById("thread-title").textContent = text.split("\n")[0].slice(0, 200);
}

// The sidebar as the API sees the threads now: counts, open or closed, newest first.
async function refreshThreads() {
  const { threads } = await api("/v1/threads?limit=100");
  const items = threads.map((t) => {
    const href = `/ui/chat?thread=${encodeURIComponent(t.id)}`;
    const active = t.id === chat.dataset.thread ? " active" : "";
    const meta = el("span", { className: "muted small" }, [el("span", { className: "count", text: `${t.messages} msg` })]);
    if (t.closed_at) meta.append(el("span", { className: "state", text: " · closed" }));
    const link = el("a", { className: `thread-link${active}`, href }, [
      el("span", { className: "title", text: t.title || "untitled" }),
      meta,
    ]);
    return el("li", {}, [link]);
  });
  if (!items.length) items.push(el("li", { className: "muted small", id: "no-threads", text: "No threads yet." }));
  document.getElementById("thread-list").replaceChildren(...items);
}

function setState(closed) {
  const state = document.getElementById("thread-state");
  state.textContent = closed ? "closed" : "open";
  state.className = `pill ${closed ? "closed" : "open"}`;
  state.hidden = false;
  const button = document.getElementById("close-thread");
  button.hidden = closed;
  button.disabled = false;
  document.getElementById("reopen-note").hidden = !closed;
}

function isClosed() {
  const state = document.getElementById("thread-state");
  return !state.hidden && state.textContent === "closed";
}

async function send(text) {
  const body = { message: text };
  if (chat.dataset.thread) body.thread_id = chat.dataset.thread;
  const reopening = isClosed();
  const sent = await api("/v1/chat?wait=false", { method: "POST", body });
  setThread(sent.thread_id, text);
  setState(false); // a message to a closed thread reopens it (as the API does): say so
  if (reopening) showNote("Your message reopened this closed thread; close it again to archive what follows.");
  const li = messageItem("user", text, sent.run_id);
  const strip = el("div", { className: "run-status", dataset: { run: sent.run_id } });
  li.append(strip);
  await refreshThreads();
  const final = await followRun(sent.run_id, strip);
  await showAnswer(sent.run_id);
  await refreshThreads();
  return final;
}

composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value.trim();
  showError("");
  showNote("");
  if (!text) {
    showError("Write a message first: it is empty.");
    return;
  }
  composer.classList.add("busy");
  input.disabled = true;
  try {
    await send(text);
    input.value = "";
    countCharacters();
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
  setState(true);
  showNote("");
  await refreshThreads();
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
