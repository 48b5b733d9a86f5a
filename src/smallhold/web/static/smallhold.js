// smallhold web shell: helpers shared by every app's page script. No framework, no network
// beyond this server. Text from the server is only ever set with textContent, never as HTML.
"use strict";

(function () {
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function errorFrom(response) {
    let code = "http_error";
    let message = `the server answered ${response.status}`;
    try {
      const body = await response.json();
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch (_) { /* not JSON: keep the status line */ }
    return new ApiError(response.status, code, message);
  }

  // fetch a JSON API route; a JSON body is sent as application/json (the guard wants it).
  async function request(url, options = {}) {
    const init = { method: options.method || "GET", headers: { accept: "application/json" } };
    if (options.json !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(options.json);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (_) {
      throw new ApiError(0, "unreachable", "smallhold is not answering; is `smallhold web` still running?");
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  async function api(url, options = {}) {
    return (await request(url, options)).json();
  }

  // POST and read newline-delimited JSON events as they arrive: onEvent(event) per line.
  async function stream(url, json, onEvent) {
    const response = await request(url, { method: "POST", json });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) onEvent(JSON.parse(line));
      }
    }
    if (buffer.trim()) onEvent(JSON.parse(buffer));
  }

  // el("li", {class: "x", "aria-current": "true"}, "text", child...)
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Small models answer in Markdown; show its code the way people expect (``` fences as
  // code blocks, `spans` as inline code) and leave the rest as text. Built from DOM nodes
  // with textContent only: an answer can never inject markup.
  function richText(node, text) {
    const parts = text.split("```");
    const out = [];
    parts.forEach((part, i) => {
      if (i % 2 === 1) {  // inside a fence (the last one may still be streaming)
        const newline = part.indexOf("\n");
        const language = newline >= 0 ? part.slice(0, newline).trim() : "";
        const code = newline >= 0 ? part.slice(newline + 1) : part;
        const pre = el("pre", language ? { "data-language": language } : {},
                       el("code", {}, code.replace(/\n$/, "")));
        out.push(pre);
        return;
      }
      let prose = part;
      if (i > 0) prose = prose.replace(/^\s+/, "");  // the block itself makes the gap
      if (i < parts.length - 1) prose = prose.replace(/\s+$/, "");
      prose.split(/(`[^`\n]+`)/).forEach((piece, j) => {
        if (!piece) return;
        out.push(j % 2 === 1 ? el("code", {}, piece.slice(1, -1)) : document.createTextNode(piece));
      });
    });
    node.replaceChildren(...out);
  }

  function bytes(n) {
    const gib = n / 2 ** 30;
    return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.round(n / 2 ** 20)} MiB`;
  }

  window.smallhold = { ApiError, api, request, stream, el, bytes, richText };
})();
