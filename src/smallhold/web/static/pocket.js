// pocket's chat page: conversations, a streamed answer, the device panel.
// The API lives at document.body.dataset.api (/pocket/api); see smallhold/apps/pocket/web.py.
"use strict";

(function () {
  const { api, stream, el, bytes, richText } = window.smallhold;
  const base = document.body.dataset.api;
  const $ = (id) => document.getElementById(id);
  const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

  const state = { current: "default", known: [], busy: false };

  function showError(message) {
    $("empty").hidden = true;
    const node = el("div", { class: "msg error", role: "alert" }, message);
    $("messages").append(node);
    scrollDown();
  }

  function scrollDown() {
    const box = $("messages");
    box.scrollTop = box.scrollHeight;
  }

  function bubble(role, text, complete = true) {
    $("empty").hidden = true;
    const node = el("div", { class: `msg ${role}${complete ? "" : " incomplete"}` });
    if (role === "assistant") richText(node, text); else node.textContent = text;
    $("messages").append(node);
    return node;
  }

  // -- conversations -------------------------------------------------------------------

  async function loadConversations() {
    const { conversations } = await api(`${base}/conversations`);
    state.known = conversations;
    renderConversations();
  }

  function renderConversations() {
    const list = $("conversations");
    const items = [...state.known];
    if (!items.some((c) => c.name === state.current)) {
      items.push({ name: state.current, title: "", turns: 0 });
    }
    list.replaceChildren(...items.map((c) => {
      const meta = c.turns ? `${c.turns} turn${c.turns === 1 ? "" : "s"}${c.title ? " · " + c.title : ""}` : "new";
      const button = el("button", { type: "button", "data-name": c.name,
                                    "aria-current": c.name === state.current ? "true" : null },
                        el("span", { class: "conv-name" }, c.name),
                        el("span", { class: "conv-meta" }, meta));
      button.addEventListener("click", () => select(c.name));
      return el("li", {}, button);
    }));
    const known = state.known.find((c) => c.name === state.current);
    $("chat-title").textContent = state.current;
    $("chat-count").textContent = known ? `${known.turns} turns` : "";
  }

  async function select(name) {
    state.current = name;
    if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
    renderConversations();
    const box = $("messages");
    box.replaceChildren($("empty") || el("p", { id: "empty", class: "empty" }));
    $("empty").hidden = false;
    if (!state.known.some((c) => c.name === name)) return;
    try {
      const { turns } = await api(`${base}/conversations/${encodeURIComponent(name)}`);
      if (state.current !== name) return;
      for (const turn of turns) bubble(turn.role, turn.content, turn.complete);
      scrollDown();
    } catch (error) {
      showError(error.message);
    }
  }

  // -- asking --------------------------------------------------------------------------

  function settings() {
    const tokens = parseInt($("max-tokens").value, 10);
    const temperature = parseFloat($("temperature").value);
    const out = {};
    if (Number.isFinite(tokens)) out.max_tokens = Math.min(4096, Math.max(16, tokens));
    if (Number.isFinite(temperature)) out.temperature = Math.min(2, Math.max(0, temperature));
    return out;
  }

  function setBusy(busy) {
    state.busy = busy;
    $("send").disabled = busy;
    $("send").textContent = busy ? "…" : "Send";
  }

  async function send() {
    const input = $("message");
    const text = input.value.trim();
    if (state.busy) return;
    if (!text) { input.focus(); return; }
    const name = state.current;
    input.value = "";
    autosize();
    setBusy(true);
    const question = bubble("user", text);
    const answer = bubble("assistant", "");
    answer.classList.add("pending");
    let answered = "";
    scrollDown();
    try {
      await stream(`${base}/chat`, { conversation: name, message: text, ...settings() },
        (event) => {
          if (event.type === "delta") {
            answered += event.text;
            richText(answer, answered);
            scrollDown();
          } else if (event.type === "done") {
            answer.classList.remove("pending");
            if (event.finish_reason !== "stop") answer.classList.add("incomplete");
          } else if (event.type === "error") {
            answer.classList.remove("pending");
            if (!answer.textContent) answer.remove();
            showError(event.message);
          }
        });
    } catch (error) {  // refused before any answer: nothing was saved, so the text goes back
      answer.remove();
      question.remove();
      showError(error.message);
      if (!input.value) { input.value = text; autosize(); }
    } finally {
      answer.classList.remove("pending");
      setBusy(false);
      input.focus();
    }
    await refresh();
  }

  async function remove() {
    const name = state.current;
    if (!state.known.some((c) => c.name === name)) return;
    if (!window.confirm(`Delete the conversation "${name}" and everything pocket remembers of it?`)) return;
    try {
      await api(`${base}/conversations/${encodeURIComponent(name)}`, { method: "DELETE" });
      await loadConversations();
      await select(state.known.length ? state.known[0].name : "default");
    } catch (error) {
      showError(error.message);
    }
  }

  // -- device --------------------------------------------------------------------------

  async function loadDevice() {
    const d = await api(`${base}/device`);
    const mode = $("power-mode");
    mode.textContent = d.power.mode;
    mode.className = `pill ${d.power.mode}`;
    $("power-reason").textContent = d.power.reason;
    const b = d.battery;
    $("battery").textContent = b.percent === null ? "none (mains power)"
      : `${Math.round(b.percent)} %${b.charging ? " (charging)" : b.charging === false ? " (on battery)" : ""}`;
    $("ram").textContent = `${bytes(d.ram.available)} free of ${bytes(d.ram.total)}`;
    const m = d.model;
    const detail = [m.summary || (m.context && `${m.context.toLocaleString()} context`),
                    `${m.backend} backend`]
      .filter(Boolean).join(" · ");
    $("model").replaceChildren(el("span", { class: "model-name" }, m.name),
                               m.loaded ? el("span", { class: "pill small" }, "loaded") : "",
                               el("span", { class: "reason" }, detail));
    $("model-reasons").replaceChildren(...(m.reasons || []).map((r) => el("li", {}, r)));
    $("why-model").hidden = !(m.reasons || []).length;
    $("background").replaceChildren(...d.background.map(
      (o) => el("li", {}, `${o.job}: ${o.action} (${o.detail})`)));
    $("jobs").hidden = !d.background.length;
  }

  async function refresh() {
    try {
      await Promise.all([loadConversations(), loadDevice()]);
    } catch (error) {
      showError(error.message);
    }
  }

  // -- wiring --------------------------------------------------------------------------

  function autosize() {
    const box = $("message");
    box.style.height = "auto";
    box.style.height = `${Math.min(box.scrollHeight + 2, 180)}px`;
  }

  $("composer").addEventListener("submit", (event) => { event.preventDefault(); send(); });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  $("message").addEventListener("input", autosize);
  $("delete").addEventListener("click", remove);
  $("new-conversation").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("new-name");
    const name = input.value.trim();
    if (!NAME.test(name)) {
      showError(`"${name}" is not a conversation name: use up to 64 letters, digits, '.', '-' or '_', starting with a letter or digit.`);
      return;
    }
    input.value = "";
    select(name);
    $("message").focus();
  });

  (async function start() {
    await refresh();
    const wanted = decodeURIComponent(location.hash.slice(1));
    const first = NAME.test(wanted) ? wanted : (state.known[0] ? state.known[0].name : "default");
    await select(first);
    $("message").focus();
  })();
})();
