// The web chat: opens a session with the chat API, keeps its token for this tab, sends what the
// customer types and shows the assistant's replies. Everything shown is set with textContent,
// so text a customer (or anyone) wrote is never read as HTML.
'use strict';
(function () {
  const log = document.getElementById('log');
  const form = document.getElementById('composer');
  const input = document.getElementById('text');
  const sendButton = document.getElementById('send');
  const choices = document.getElementById('choices');
  const status = document.getElementById('status');
  const KEY = 'jq_chat_session';
  // Messages shown (the customer's and the company's), so that polling adds only new ones.
  let seen = 0;
  let sending = false;
  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem(KEY) || 'null');
  } catch (e) {
    session = null;
  }

  function clientId() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      return window.crypto.randomUUID();
    }
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function add(role, text) {
    const item = document.createElement('li');
    item.className = 'msg ' + (role === 'user' ? 'mine' : 'theirs');
    const price = role === 'assistant' ? /\$[0-9][0-9,]*(\.[0-9]{2})?/.exec(text) : null;
    if (price) {
      const badge = document.createElement('span');
      badge.className = 'price';
      badge.textContent = price[0];
      item.appendChild(badge);
    }
    const body = document.createElement('span');
    body.className = 'body';
    body.textContent = text;
    item.appendChild(body);
    log.appendChild(item);
    seen += 1;
    item.scrollIntoView({ block: 'end' });
  }

  // "1) Tue Nov 25, 9:00 AM – 10:30 AM" lines become buttons that answer "1".
  function offerChoices(text) {
    choices.replaceChildren();
    const pattern = /^([0-9]+)\) (.+)$/gm;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      const answer = match[1];
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'choice';
      button.textContent = match[2];
      button.addEventListener('click', function () {
        send(answer, button.textContent);
      });
      choices.appendChild(button);
    }
  }

  function busy(on, message) {
    sendButton.disabled = on;
    input.disabled = on;
    status.textContent = message || '';
  }

  async function open() {
    if (session) {
      return session;
    }
    const response = await fetch('/api/chat/sessions', { method: 'POST' });
    if (!response.ok) {
      throw new Error('could not start the chat (' + response.status + ')');
    }
    session = await response.json();
    sessionStorage.setItem(KEY, JSON.stringify(session));
    return session;
  }

  async function send(text, shown) {
    sending = true;
    add('user', shown || text);
    choices.replaceChildren();
    busy(true, 'Sending…');
    try {
      const s = await open();
      const response = await fetch('/api/chat/sessions/' + encodeURIComponent(s.session_id) + '/messages', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + s.token },
        body: JSON.stringify({ text: text, id: clientId() }),
      });
      if (response.status === 401 || response.status === 403 || response.status === 404) {
        sessionStorage.removeItem(KEY);
        session = null;
        throw new Error('the chat expired; send your message again');
      }
      const body = await response.json();
      if (!response.ok) {
        throw new Error((body.error && body.error.message) || 'the message was not sent');
      }
      let last = '';
      for (const reply of body.replies || []) {
        add('assistant', reply.content);
        last = reply.content;
      }
      offerChoices(last);
      // 202: the answer is still being written; the poll below shows it when it is there.
      busy(false, response.status === 202 ? 'Still thinking…' : '');
    } catch (e) {
      busy(false, 'Not sent: ' + e.message);
    }
    sending = false;
    input.focus();
  }

  // The thread's messages after the `seen` shown: what the company wrote since (a person from
  // the console answers this way too).
  async function restore() {
    if (!session || sending) {
      return;
    }
    const response = await fetch('/api/chat/sessions/' + encodeURIComponent(session.session_id) + '/messages', {
      headers: { Authorization: 'Bearer ' + session.token },
    });
    if (!response.ok) {
      sessionStorage.removeItem(KEY);
      session = null;
      return;
    }
    const body = await response.json();
    if (sending) {
      return;
    }
    const shown = (body.messages || []).filter((m) => m.role === 'user' || m.role === 'assistant');
    const fresh = shown.slice(seen);
    let last = '';
    for (const message of fresh) {
      add(message.role, message.content);
      last = message.role === 'assistant' ? message.content : '';
    }
    if (fresh.length > 0) {
      offerChoices(last);
    }
  }

  function poll() {
    restore()
      .catch(function () {})
      .finally(function () {
        setTimeout(poll, 3000);
      });
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    const text = input.value.trim();
    if (text === '') {
      status.textContent = 'Type a message first.';
      return;
    }
    input.value = '';
    send(text);
  });

  poll();
})();
