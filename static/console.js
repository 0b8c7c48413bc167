// The console's only script: on a conversation's page, new messages appear without a reload.
// It asks for the messages after the last one shown and adds them as text nodes.
'use strict';
(function () {
  const thread = document.getElementById('thread');
  if (!thread || !thread.dataset.poll) {
    return;
  }
  let after = thread.dataset.after || '';
  async function poll() {
    try {
      const url = thread.dataset.poll + '?after=' + encodeURIComponent(after);
      const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (response.ok) {
        const body = await response.json();
        for (const message of body.messages || []) {
          const item = document.createElement('li');
          item.className = 'msg ' + message.role;
          const meta = document.createElement('span');
          meta.className = 'muted';
          meta.textContent = message.who + ' · ' + message.at;
          const text = document.createElement('span');
          text.className = 'body';
          text.textContent = message.content;
          item.append(meta, text);
          thread.appendChild(item);
          after = message.created_at;
        }
      }
    } catch (e) {
      // The next poll tries again.
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();

// On the settings page, the pricebook preview follows what the operator types (the Preview
// button does the same without this script).
(function () {
  const live = document.getElementById('live-preview');
  const book = document.getElementById('pricebook-json');
  const sample = document.getElementById('sample');
  if (!live || !book || !sample) {
    return;
  }
  const csrf = book.form.querySelector('input[name=csrf]');
  let timer = null;
  async function update() {
    const body = new URLSearchParams({ csrf: csrf.value, pricebook: book.value, sample: sample.value });
    try {
      const response = await fetch(live.dataset.url, { method: 'POST', body: body, credentials: 'same-origin' });
      const result = await response.json();
      live.hidden = false;
      // The preview of the last submit is for what was typed then.
      const submitted = document.getElementById('preview');
      if (submitted) {
        submitted.hidden = true;
      }
      live.textContent = result.preview || (result.problems || []).join('\n') || '';
    } catch (e) {
      // Typing on goes on; the Preview button still works.
    }
  }
  function later() {
    clearTimeout(timer);
    timer = setTimeout(update, 400);
  }
  book.addEventListener('input', later);
  sample.addEventListener('input', later);
})();
