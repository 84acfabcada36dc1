// The "E-mail scripts" page (docs/api.md, "The page"). Plain DOM, no
// library, nothing from elsewhere. Labels come from the server in the
// page's language (#strings); numbers and dates are formatted by the
// browser for that language. Text from the server is only ever set with
// textContent. Results are announced in the #announce live region.
'use strict';
(() => {
  const S = JSON.parse(document.getElementById('strings').textContent);
  const lang = document.documentElement.lang || 'en';
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const SVG = 'http://www.w3.org/2000/svg';
  let csrf = null;
  let account = null;
  let last = null;
  let opener = null;

  const num = (n) => new Intl.NumberFormat(lang).format(n);
  const dateTime = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' });
  const shortDay = new Intl.DateTimeFormat(lang, { day: 'numeric', month: 'short', timeZone: 'UTC' });
  const when = (iso) => (iso ? dateTime.format(new Date(iso)) : '—');
  const fill = (text, vars) => text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? vars[k] : m));
  const unit = (n, u, display) =>
    new Intl.NumberFormat(lang, { style: 'unit', unit: u, unitDisplay: display || 'narrow' }).format(n);
  function duration(s) {
    if (s === null || s === undefined) return '—';
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const parts = [];
    if (d) parts.push(unit(d, 'day'));
    if (d || h) parts.push(unit(h, 'hour'));
    if (!d) parts.push(unit(m, 'minute'));
    return parts.join(' ');
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (csrf && method !== 'GET') headers['X-CSRF-Token'] = csrf;
    const r = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let doc = null;
    try {
      doc = await r.json();
    } catch (e) {
      doc = null;
    }
    if (!r.ok) {
      const err = new Error(doc && doc.message ? doc.message : r.status + ' ' + r.statusText);
      err.status = r.status;
      throw err;
    }
    return doc;
  }

  function announce(text) {
    const a = $('announce');
    a.textContent = '';
    // A new text node after a pause, so the same words are read again.
    setTimeout(() => {
      a.textContent = text;
    }, 30);
  }

  function failed(e) {
    if (e.status === 401) {
      signInView();
      $('signin-error').textContent = e.message;
      return;
    }
    announce(S.failed + ' ' + e.message);
  }

  function view(name) {
    for (const id of ['signin', 'picker', 'panel']) $(id).hidden = id !== name;
  }

  function focusHeading(id) {
    const h = $(id);
    h.tabIndex = -1;
    h.focus();
  }

  // Sign-in and the session.
  function signInView() {
    csrf = null;
    account = null;
    $('session-nav').hidden = true;
    $('account-name').textContent = '';
    view('signin');
    $('token').focus();
  }

  function begin(s) {
    csrf = s.csrf;
    $('session-nav').hidden = false;
    $('other-account').hidden = s.account !== null;
    if (s.account !== null) open(s.account);
    else pickerView();
  }

  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('signin-error').textContent = '';
    try {
      const s = await api('POST', '/v1/session', { token: $('token').value.trim() });
      $('token').value = '';
      begin(s);
    } catch (e) {
      $('signin-error').textContent = e.message;
      $('token').focus();
    }
  });

  $('sign-out').addEventListener('click', async () => {
    try {
      await api('DELETE', '/v1/session');
    } catch (e) {
      // Signed out either way.
    }
    signInView();
  });

  // The account picker (admin tokens).
  function pickerView() {
    account = null;
    last = null;
    $('account-name').textContent = '';
    view('picker');
    $('search').focus();
    search($('search').value);
  }

  let searchTimer = null;
  $('search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => search($('search').value), 200);
  });

  async function search(q) {
    try {
      const d = await api('GET', '/v1/accounts?limit=50&search=' + enc(q.trim()));
      $('account-list').replaceChildren(
        ...d.accounts.map((a) => {
          const li = document.createElement('li');
          const b = document.createElement('button');
          b.type = 'button';
          b.textContent = a.account;
          b.addEventListener('click', () => open(a.account));
          li.append(b);
          return li;
        }),
      );
    } catch (e) {
      $('picker-error').textContent = e.message;
    }
  }

  $('picker-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = $('search').value.trim();
    if (name) open(name);
  });
  $('other-account').addEventListener('click', pickerView);

  // The account's page.
  async function open(name) {
    $('picker-error').textContent = '';
    try {
      const d = await api('GET', '/v1/accounts/' + enc(name) + '/page');
      account = name;
      $('account-name').textContent = '— ' + name;
      view('panel');
      render(d);
      focusHeading('state-title');
    } catch (e) {
      if (e.status === 401) failed(e);
      else if (!$('picker').hidden) $('picker-error').textContent = e.message;
      else announce(S.failed + ' ' + e.message);
    }
  }

  async function reload() {
    if (!account) return;
    try {
      render(await api('GET', '/v1/accounts/' + enc(account) + '/page'));
    } catch (e) {
      failed(e);
    }
  }

  function cell(text, label, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (label) td.dataset.label = label;
    if (cls) td.className = cls;
    return td;
  }

  function rows(tbody, items, empty, columns) {
    if (items.length === 0) {
      const tr = document.createElement('tr');
      const td = cell(empty, null, 'empty');
      td.colSpan = columns;
      tr.append(td);
      tbody.replaceChildren(tr);
      return;
    }
    tbody.replaceChildren(
      ...items.map((cells) => {
        const tr = document.createElement('tr');
        tr.append(...cells);
        return tr;
      }),
    );
  }

  function render(d) {
    last = d;
    const st = d.status;
    const box = $('state-box');
    box.className = 'state-box ' + (st.sends ? 'sending' : 'blocked');
    box.dataset.state = st.state;
    $('state-text').textContent = (S['state_' + st.state] || st.state) + ' (' + st.state + ')';
    $('state-since').textContent = S.since + ' ' + when(st.since);
    $('block-help').textContent = fill(S.block_help, {
      hold: unit(Math.round(d.hold_max_age_s / 3600), 'hour', 'long'),
    });
    for (const [key, id] of [['block', 'do-block'], ['unblock', 'do-unblock'], ['purge', 'do-purge']]) {
      const on = d.buttons[key];
      const b = $(id);
      b.setAttribute('aria-disabled', String(!on));
      b.setAttribute('aria-describedby', key + '-help' + (on ? '' : ' unavailable'));
    }
    const to = $('report-to');
    to.textContent = st.report_to || S.not_set;
    to.className = st.report_to ? '' : 'empty';
    $('sent-total').textContent = num(st.sent_total);
    $('sent-today').textContent =
      num(st.sent_today) + (st.max_per_day > 0 ? ' / ' + num(st.max_per_day) + ' ' + S.per_day : '');
    $('error-total').textContent = num(st.error_total);
    chart(d.stats.days);
    rows(
      $('days'),
      d.stats.days.slice().reverse().map((x) => [cell(x.day, S.day), cell(num(x.sent), S.sent)]),
      '—',
      2,
    );
    const h = d.held;
    $('held-count').textContent = num(h.held);
    $('held-oldest').textContent = when(h.oldest);
    $('held-left').textContent = duration(h.expires_in_s);
    rows(
      $('held-scripts'),
      h.scripts.map((x) => [cell(x.script || S.no_script, S.script), cell(num(x.held), S.count, 'num')]),
      S.held_none,
      2,
    );
    rows(
      $('error-rows'),
      d.errors.errors.map((e) => [cell(when(e.at), S.date), cell(e.recipient, S.recipient), cell(e.answer, S.answer)]),
      S.errors_none,
      3,
    );
    rows(
      $('history-rows'),
      d.history.events
        .slice()
        .reverse()
        .map((e) => [
          cell(when(e.at), S.date),
          cell(e.old_state, S.from_state),
          cell(e.new_state, S.to_state),
          cell(e.reason, S.reason),
          cell(e.actor, S.by),
          cell(e.note, S.note),
        ]),
      S.history_none,
      6,
    );
  }

  // The history graph: one bar per day, inline SVG.
  function svg(name, attrs, text) {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // Drawn at the width it is shown at, so its text keeps its size.
  function chart(days) {
    const W = Math.max(240, Math.round($('chart').clientWidth) || 600);
    const H = 200;
    const left = 40;
    const bottom = 24;
    const max = Math.max(1, ...days.map((x) => x.sent));
    const label = fill(S.chart_label, { days: days.length, max: num(max) });
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': label, focusable: 'false' });
    root.append(svg('title', {}, label));
    const plotH = H - bottom - 8;
    const step = days.length ? (W - left) / days.length : 0;
    days.forEach((x, i) => {
      const h = Math.round((x.sent / max) * plotH);
      const bar = svg('rect', {
        class: 'bar',
        x: (left + i * step + step * 0.15).toFixed(1),
        y: H - bottom - h,
        width: Math.max(1, step * 0.7).toFixed(1),
        height: h,
      });
      bar.append(svg('title', {}, x.day + ': ' + num(x.sent)));
      root.append(bar);
    });
    root.append(svg('line', { class: 'axis', x1: left, y1: H - bottom, x2: W, y2: H - bottom }));
    root.append(svg('text', { x: left - 6, y: 12, 'text-anchor': 'end' }, num(max)));
    root.append(svg('text', { x: left - 6, y: H - bottom, 'text-anchor': 'end' }, '0'));
    if (days.length) {
      const day = (x) => shortDay.format(new Date(x.day + 'T00:00:00Z'));
      root.append(svg('text', { x: left, y: H - 6 }, day(days[0])));
      root.append(svg('text', { x: W, y: H - 6, 'text-anchor': 'end' }, day(days[days.length - 1])));
    }
    $('chart').replaceChildren(root);
    $('chart-caption').textContent = label;
  }

  // Block, Unblock, Purge: each confirmed, then the control panel's request.
  for (const id of ['do-block', 'do-unblock', 'do-purge']) {
    $(id).addEventListener('click', (ev) => {
      const b = ev.currentTarget;
      if (b.getAttribute('aria-disabled') === 'true') {
        announce(S.unavailable);
        return;
      }
      opener = b;
      const dlg = $('confirm');
      $('confirm-title').textContent = b.textContent;
      $('confirm-text').textContent = $(b.id.replace('do-', '') + '-help').textContent;
      dlg.dataset.action = b.dataset.action;
      dlg.returnValue = '';
      dlg.showModal();
      $('confirm-ok').focus();
    });
  }

  $('confirm').addEventListener('close', async () => {
    const dlg = $('confirm');
    const back = opener;
    if (dlg.returnValue === 'ok') {
      try {
        await api('POST', '/hosting/web/' + enc(account) + '/email/request', { action: dlg.dataset.action });
        announce(S.request_sent);
        await reload();
      } catch (e) {
        failed(e);
      }
    }
    if (back) back.focus();
  });

  // Change recipient.
  $('change-recipient').addEventListener('click', () => {
    opener = $('change-recipient');
    $('recipient-error').textContent = '';
    $('recipient-input').value = (last && last.status.report_to) || '';
    $('recipient').showModal();
    $('recipient-input').focus();
  });

  $('recipient-form').addEventListener('submit', async (ev) => {
    if (!ev.submitter || ev.submitter.value !== 'ok') return;
    ev.preventDefault();
    const email = $('recipient-input').value.trim();
    try {
      await api('PUT', '/hosting/web/' + enc(account) + '/email', { email: email || null });
      $('recipient').close('ok');
      announce(S.request_sent);
      await reload();
    } catch (e) {
      if (e.status === 401) {
        $('recipient').close('cancel');
        failed(e);
        return;
      }
      $('recipient-error').textContent = e.message;
      $('recipient-input').focus();
    }
  });

  $('recipient').addEventListener('close', () => {
    if (opener) opener.focus();
  });

  // The mails in error, shown on demand.
  $('errors-toggle').addEventListener('click', () => {
    const b = $('errors-toggle');
    const show = b.getAttribute('aria-expanded') !== 'true';
    b.setAttribute('aria-expanded', String(show));
    $('errors').hidden = !show;
  });

  $('refresh').addEventListener('click', reload);
  let resizing = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      if (last) chart(last.stats.days);
    }, 100);
  });
  setInterval(() => {
    if (account && document.visibilityState === 'visible' && !document.querySelector('dialog[open]')) reload();
  }, 60000);

  api('GET', '/v1/session').then(begin, (e) => {
    if (e.status === 401) signInView();
    else failed(e);
  });
})();
