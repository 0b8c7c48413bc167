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
