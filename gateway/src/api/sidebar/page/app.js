// The sidebar page's script: signs the rep in (WeCom OAuth through /sidebar/v1/oauth/start when
// /sidebar/v1/me is 401), finds the customer (?external_userid=, else WeCom's
// getCurExternalContact through the JS-SDK), shows the card and runs its actions, all through
// the /sidebar/v1 API. Plain modern JS, no framework; every value is put in the page as text.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const page = { me: null, ext: null, card: null, inboxCursor: null, moving: null };
  const SIGN_IN_KEY = 'scrm_sidebar_sign_in_at';
  const KNOWN_TAGS_KEY = 'scrm_sidebar_known_tags';
  // WeCom's JS-SDK: jweixin gives `wx`, jwxwork adds `wx.agentConfig` on older clients.
  const JSSDK = [
    'https://res.wx.qq.com/open/js/jweixin-1.2.0.js',
    'https://open.work.weixin.qq.com/wwopen/js/jwxwork-1.0.0.js',
  ];

  // ---- labels ---------------------------------------------------------------------------------

  const CODES = {
    unauthenticated: '未登录 / Not signed in',
    invalid_token: '登录已失效 / Session expired',
    not_your_customer: '不是你的客户 / Not your customer',
    not_found: '找不到 / Not found',
    not_a_member: '不是企业成员 / Not a member of the corp',
    not_a_rep: '未开通侧边栏 / Not a rep of this tenant',
    invalid_field: '输入有误 / Invalid input',
    missing_field: '缺少内容 / Missing input',
    service_unavailable: '服务暂不可用 / Service unavailable',
    network_error: '网络错误 / Network error',
  };
  const NOTE_TYPES = {
    call: '电话 / Call', wechat: '微信 / WeChat', visit: '拜访 / Visit',
    meeting: '会议 / Meeting', email: '邮件 / Email', other: '其他 / Other',
  };
  const ORIGINS = {
    manual: '手动 / Manual', rule: '规则 / Rule', wecom: '企业微信 / WeCom',
    import: '导入 / Import', oa: '公众号 / OA',
  };
  const ADD_WAYS = {
    0: '未知 / Unknown', 1: '扫描二维码 / QR code', 2: '搜索手机号 / Phone search',
    3: '名片分享 / Shared card', 4: '群聊 / Group chat', 5: '手机通讯录 / Phone contacts',
    6: '微信联系人 / WeChat contacts', 9: '搜索邮箱 / Email search',
    201: '内部成员共享 / Shared by a colleague', 202: '管理员分配 / Assigned by an admin',
  };
  const TIMELINE_TYPES = {
    'note.added': '备注 / Note',
    'lead.stage_changed': '阶段变更 / Stage moved',
    'channel.wecom.external_contact.add_external_contact': '添加为客户 / Added as a contact',
    'channel.wecom.external_contact.add_half_external_contact': '客户添加 / Added by the customer',
    'channel.wecom.external_contact.edit_external_contact': '客户资料变更 / Contact edited',
    'channel.wecom.external_contact.del_external_contact': '删除客户 / Contact removed',
    'channel.wecom.external_contact.del_follow_user': '被客户删除 / Removed by the customer',
    'channel.wecom.external_chat.update': '客户群变更 / Group chat changed',
    'channel.oa.subscribe': '关注公众号 / Followed the OA',
    'channel.oa.unsubscribe': '取关公众号 / Unfollowed the OA',
  };

  // ---- DOM and API basics ---------------------------------------------------------------------

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') node.textContent = String(v);
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function when(value) {
    if (!value) return '—';
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString('zh-CN', { hour12: false });
  }

  function timeEl(value) {
    return el('time', { datetime: value || undefined, text: when(value) });
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details;
    }
  }

  /** Calls the sidebar API; an answer that is not 2xx throws its `{code, message}`. */
  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'network_error', String(e && e.message ? e.message : e));
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!resp.ok) {
      const code = (data && data.code) || `http_${resp.status}`;
      const message = (data && data.message) || resp.statusText || text.slice(0, 200);
      throw new ApiError(resp.status, code, message, data && data.details);
    }
    return data;
  }

  function status(message) {
    $('status').textContent = message || '';
  }

  function showError(err) {
    const e = err instanceof ApiError ? err : new ApiError(0, 'error', String(err && err.message ? err.message : err));
    const box = $('error');
    box.dataset.code = e.code;
    box.dataset.status = String(e.status || '');
    $('error-code').textContent = `${e.status ? `${e.status} ` : ''}${e.code}`;
    let message = e.message || '';
    if (CODES[e.code]) message = `${CODES[e.code]}: ${message}`;
    if (e.details && Array.isArray(e.details.allowed)) {
      message += ` (允许 / allowed: ${e.details.allowed.join(', ') || '—'})`;
    }
    $('error-message').textContent = message;
    show(box, true);
    status('');
  }

  function hideError() {
    show($('error'), false);
  }

  /** Runs an action with its buttons disabled; shows its error, or `done` when it worked. */
  async function act(form, action, done) {
    const buttons = form ? Array.from(form.querySelectorAll('button')) : [];
    buttons.forEach((b) => { b.disabled = true; });
    $('card').setAttribute('aria-busy', 'true');
    hideError();
    try {
      await action();
      if (done) status(done);
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        signIn();
      } else {
        showError(e);
      }
      return false;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      $('card').removeAttribute('aria-busy');
    }
  }

  // ---- sign-in --------------------------------------------------------------------------------

  /** Goes through WeCom's sign-in and back to this page with its query. */
  function signIn() {
    const corp = params.get('corp_id');
    const agent = params.get('agent_id');
    if (!corp || !agent) {
      showError(new ApiError(401, 'unauthenticated',
        '页面地址缺少 corp_id 和 agent_id，无法发起企业微信登录 / the page address has no corp_id and agent_id to sign in through WeCom with'));
      $('me').textContent = '未登录 / Not signed in';
      $('me').dataset.state = 'signed-out';
      return;
    }
    // Two sign-ins in 30 s that did not stick: stop rather than loop through WeCom.
    const now = Date.now();
    let tries = [];
    try {
      tries = JSON.parse(sessionStorage.getItem(SIGN_IN_KEY) || '[]').filter((t) => now - t < 30000);
    } catch (_) {
      tries = [];
    }
    if (tries.length >= 2) {
      sessionStorage.removeItem(SIGN_IN_KEY);
      showError(new ApiError(401, 'sign_in_failed',
        '刚刚登录过但会话未生效（浏览器是否禁用了 Cookie？），请刷新重试 / signed in a moment ago, but the session did not stick (are cookies blocked?); reload to try again'));
      $('me').dataset.state = 'signed-out';
      return;
    }
    tries.push(now);
    sessionStorage.setItem(SIGN_IN_KEY, JSON.stringify(tries));
    const redirect = location.pathname + location.search;
    const q = new URLSearchParams({ corp_id: corp, agent_id: agent, redirect });
    location.assign(`/sidebar/v1/oauth/start?${q}`);
  }

  // ---- which customer -------------------------------------------------------------------------

  function inWeCom() {
    return /wxwork/i.test(navigator.userAgent);
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = el('script', { src, onload: resolve });
      s.addEventListener('error', () => reject(new ApiError(0, 'jssdk_unavailable', `cannot load ${src}`)));
      document.head.append(s);
    });
  }

  /** The external_userid of the chat this sidebar is beside, through WeCom's JS-SDK. */
  async function currentContact() {
    if (!window.wx) await loadScript(JSSDK[0]);
    if (!window.wx.agentConfig) await loadScript(JSSDK[1]);
    const wx = window.wx;
    const sig = await api('POST', '/sidebar/v1/jssdk', { url: location.href.split('#')[0] });
    await new Promise((resolve, reject) => {
      wx.config({
        beta: true,
        debug: false,
        appId: sig.corp.appId,
        timestamp: sig.corp.timestamp,
        nonceStr: sig.corp.nonceStr,
        signature: sig.corp.signature,
        jsApiList: ['getCurExternalContact'],
      });
      wx.ready(resolve);
      wx.error((res) => reject(new ApiError(0, 'wx_config_failed', (res && res.errMsg) || 'wx.config')));
    });
    await new Promise((resolve, reject) => {
      wx.agentConfig({
        corpid: sig.agent.corpid,
        agentid: sig.agent.agentid,
        timestamp: sig.agent.timestamp,
        nonceStr: sig.agent.nonceStr,
        signature: sig.agent.signature,
        jsApiList: ['getCurExternalContact'],
        success: resolve,
        fail: (res) => reject(new ApiError(0, 'wx_agent_config_failed', (res && res.errMsg) || 'wx.agentConfig')),
      });
    });
    return new Promise((resolve, reject) => {
      wx.invoke('getCurExternalContact', {}, (res) => {
        if (res && res.err_msg === 'getCurExternalContact:ok' && res.userId) resolve(res.userId);
        else reject(new ApiError(0, 'no_current_contact', (res && res.err_msg) || 'getCurExternalContact'));
      });
    });
  }

  async function customerToOpen() {
    const fromQuery = params.get('external_userid');
    if (fromQuery) return fromQuery;
    if (window.wx || inWeCom()) {
      try {
        return await currentContact();
      } catch (e) {
        showError(e);
      }
    }
    return null;
  }

  // ---- the card -------------------------------------------------------------------------------

  function customerPath(suffix) {
    return `/sidebar/v1/customers/${encodeURIComponent(page.ext)}${suffix || ''}`;
  }

  async function openCustomer(ext) {
    page.ext = ext;
    show($('open-form'), false);
    show($('inbox'), false);
    $('show-inbox').setAttribute('aria-expanded', 'false');
    status('正在加载客户… / Loading the customer…');
    if (await act(null, reloadCard)) {
      status('');
    } else if (!page.card || page.card.external_userid !== ext) {
      // Not shown: offer to open another one.
      show($('card'), false);
      $('open-external').value = ext;
      show($('open-form'), true);
    }
  }

  async function reloadCard() {
    const card = await api('GET', customerPath());
    page.card = card;
    renderCard(card);
    await reloadNotes();
  }

  function facts(dl, rows) {
    clear(dl);
    for (const [label, value] of rows) {
      dl.append(el('dt', { text: label }), el('dd', {}, value === undefined || value === null || value === '' ? '—' : value));
    }
  }

  function gender(g) {
    if (g === 1 || g === '1' || g === 'male') return '男 / Male';
    if (g === 2 || g === '2' || g === 'female') return '女 / Female';
    return '性别未知 / Gender unknown';
  }

  function renderCard(c) {
    const main = $('card');
    main.dataset.external = c.external_userid || '';
    $('c-name').textContent = c.name || c.external_userid || '—';
    $('c-gender').textContent = gender(c.gender);
    $('c-external').textContent = c.external_userid || '';
    const avatar = $('c-avatar');
    const src = c.avatar ? String(c.avatar).replace(/^http:\/\//, 'https://') : '';
    if (src && avatar.dataset.failed !== src) {
      if (avatar.getAttribute('src') !== src) avatar.src = src;
      avatar.alt = `${c.name || ''} 的头像 / avatar`;
      show(avatar, true);
    } else {
      show(avatar, false);
    }

    const f = c.follow || {};
    facts($('c-follow'), [
      ['备注名 / Remark', f.remark],
      ['添加方式 / Added by', f.add_way === undefined || f.add_way === null ? null : (ADD_WAYS[f.add_way] || String(f.add_way))],
      ['添加时间 / Added at', f.added_at ? timeEl(f.added_at) : null],
      ['渠道参数 / State', f.state],
    ]);
    const source = Object.entries(c.source || {});
    facts($('c-source'), source.length ? source.map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]) : [['—', '暂无 / None']]);
    const others = clear($('c-others'));
    for (const o of c.other_reps || []) {
      others.append(el('li', {}, el('strong', { text: o.user_id }), ' · ', timeEl(o.added_at)));
    }
    if (!others.childElementCount) others.append(el('li', { class: 'muted', text: '无 / None' }));

    renderStage(c.stage);
    renderTags(c.tags || [], c.catalog || []);
    renderScores(c.scores || []);
    renderTimeline(c.timeline || []);
    const chats = clear($('c-chats'));
    for (const g of c.group_chats || []) {
      chats.append(el('li', {}, el('strong', { text: g.name || g.chat_id }), ' · ', timeEl(g.joined_at)));
    }
    if (!chats.childElementCount) chats.append(el('li', { class: 'muted', text: '无 / None' }));
    show(main, true);
    show($('show-card'), true);
  }

  function renderStage(stage) {
    const moves = clear($('c-moves'));
    show($('move-form'), false);
    if (!stage) {
      $('c-stage').textContent = '暂无线索 / No lead yet';
      $('c-stage-since').textContent = '—';
      $('c-sla').textContent = '—';
      return;
    }
    $('c-stage').textContent = stage.key;
    clear($('c-stage-since')).append(timeEl(stage.entered_at));
    clear($('c-sla')).append(timeEl(stage.sla_due_at));
    for (const to of stage.allowed_moves || []) {
      moves.append(el('button', {
        type: 'button',
        class: 'secondary',
        'data-stage': to,
        'aria-label': `移至 ${to} / Move to ${to}`,
        onclick: () => askReason(to),
      }, `→ ${to}`));
    }
    if (!moves.childElementCount) moves.append(el('span', { class: 'muted', text: '无可移动阶段 / No moves from here' }));
  }

  function askReason(to) {
    page.moving = to;
    $('move-stage').value = to;
    $('move-label').textContent = `移至 ${to} 的原因 / Reason for moving to ${to}`;
    show($('move-form'), true);
    $('move-reason').focus();
  }

  function knownTags() {
    try {
      const v = JSON.parse(localStorage.getItem(KNOWN_TAGS_KEY) || '[]');
      return Array.isArray(v) ? v : [];
    } catch (_) {
      return [];
    }
  }

  /** Remembers the tags seen on cards in this browser (offered besides the card's catalogue). */
  function rememberTags(groups) {
    const known = new Map(knownTags().map((t) => [t.id, t]));
    for (const g of groups) {
      for (const t of g.tags || []) {
        known.set(t.tag_id, { id: t.tag_id, name: t.name, group: g.group_name || g.group_id });
      }
    }
    const list = Array.from(known.values()).slice(-200);
    try {
      localStorage.setItem(KNOWN_TAGS_KEY, JSON.stringify(list));
    } catch (_) { /* storage full or off: only the suggestions are lost */ }
    return list;
  }

  function renderTags(groups, catalog) {
    const box = clear($('c-tags'));
    const mine = new Set();
    for (const g of groups) {
      const list = el('ul', { class: 'tags' });
      for (const t of g.tags || []) {
        mine.add(t.tag_id);
        list.append(el('li', { class: 'tag', 'data-tag-id': t.tag_id },
          el('span', { class: 'tag-name', text: t.name || t.tag_id }),
          el('span', { class: 'origin', title: t.since ? when(t.since) : undefined, text: ORIGINS[t.origin] || t.origin || '' }),
          el('button', {
            type: 'button',
            class: 'remove',
            'aria-label': `移除标签 ${t.name || t.tag_id} / Remove tag ${t.name || t.tag_id}`,
            onclick: (ev) => act(ev.currentTarget.closest('li'), async () => {
              await api('POST', customerPath('/tags'), { remove: [t.tag_id] });
              await reloadCard();
            }, '已移除标签 / Tag removed'),
          }, '×')));
      }
      box.append(el('div', { class: 'group' }, el('h4', { text: g.group_name || g.group_id || '未分组 / No group' }), list));
    }
    if (!groups.length) box.append(el('p', { class: 'muted', text: '暂无标签 / No tags' }));
    const suggestions = clear($('tag-known'));
    const offered = new Set();
    // The tenant's active tags the card lists first, then tags seen on other cards.
    const fromCatalog = [];
    for (const g of catalog) {
      for (const t of g.tags || []) {
        fromCatalog.push({ id: t.tag_id, name: t.name, group: g.group_name || g.group_id });
      }
    }
    for (const t of fromCatalog.concat(rememberTags(groups))) {
      if (mine.has(t.id) || offered.has(t.id)) continue;
      offered.add(t.id);
      suggestions.append(el('option', { value: t.id, label: `${t.name} (${t.group || ''})` }));
    }
  }

  function renderScores(scores) {
    const list = clear($('c-scores'));
    for (const s of scores) {
      const reasons = el('ul', { class: 'reasons' });
      for (const r of s.reasons || []) {
        const pts = Number(r.points || 0);
        reasons.append(el('li', {}, `${r.reason} `, el('span', { class: 'pts', text: `${pts >= 0 ? '+' : ''}${pts}` }), ` ×${r.entries}`));
      }
      list.append(el('li', {}, el('strong', { text: s.name || s.model }), ': ', el('span', { class: 'score', text: String(s.score) }), reasons));
    }
    if (!scores.length) list.append(el('li', { class: 'muted', text: '暂无评分 / No scores' }));
  }

  function summaryText(e) {
    const s = e.summary || {};
    if (e.type === 'lead.stage_changed') {
      return `${s.from || '∅'} → ${s.to || '?'}${s.reason ? `（${s.reason}）` : ''}${s.actor ? ` · ${s.actor}` : ''}`;
    }
    if (typeof s === 'string') return s;
    if (s.text) return s.text;
    const parts = Object.entries(s).filter(([, v]) => v !== null && v !== '' && typeof v !== 'object');
    return parts.map(([k, v]) => `${k}: ${v}`).join(' · ');
  }

  function renderTimeline(entries) {
    const list = clear($('c-timeline'));
    for (const e of entries) {
      list.append(el('li', { 'data-type': e.type },
        el('div', { class: 'meta' }, timeEl(e.at), ' ', el('span', { class: 'kind', text: TIMELINE_TYPES[e.type] || e.type })),
        el('div', { class: 'text', text: summaryText(e) })));
    }
    if (!entries.length) list.append(el('li', { class: 'muted', text: '暂无记录 / Nothing yet' }));
  }

  async function reloadNotes() {
    const notes = await api('GET', customerPath('/notes?limit=20'));
    const list = clear($('c-notes'));
    for (const n of (notes && notes.items) || []) {
      list.append(el('li', { 'data-note-id': n.id },
        el('div', { class: 'meta' }, timeEl(n.created_at), ' ', el('span', { class: 'kind', text: NOTE_TYPES[n.type] || n.type }), ' · ', n.author || ''),
        el('div', { class: 'text', text: n.text }),
        n.next_follow_up_at ? el('div', { class: 'muted' }, '下次跟进 / Next follow-up: ', timeEl(n.next_follow_up_at)) : null));
    }
    if (!list.childElementCount) list.append(el('li', { class: 'muted', text: '暂无备注 / No notes' }));
  }

  // ---- the inbox ------------------------------------------------------------------------------

  function cardLink(ext) {
    const q = new URLSearchParams(params);
    q.set('external_userid', ext);
    return `${location.pathname}?${q}`;
  }

  async function loadInbox(more) {
    const q = new URLSearchParams({ limit: '20' });
    if (more && page.inboxCursor) q.set('cursor', page.inboxCursor);
    const answer = await api('GET', `/sidebar/v1/inbox?${q}`);
    const list = $('inbox-list');
    if (!more) clear(list);
    for (const n of answer.items || []) {
      list.append(el('li', { 'data-status': n.status },
        el('div', { class: 'meta' }, timeEl(n.created_at), ' ', el('span', { class: 'kind', text: n.status })),
        el('div', { class: 'text', text: n.title }),
        n.external_userid ? el('a', { href: cardLink(n.external_userid) }, '打开客户 / Open customer') : null));
    }
    if (!list.childElementCount) list.append(el('li', { class: 'muted', text: '暂无通知 / No notifications' }));
    page.inboxCursor = answer.next_cursor || null;
    show($('inbox-more'), Boolean(page.inboxCursor));
  }

  // ---- wiring ---------------------------------------------------------------------------------

  function wire() {
    $('error-close').addEventListener('click', hideError);
    $('c-avatar').addEventListener('error', (ev) => {
      ev.currentTarget.dataset.failed = ev.currentTarget.getAttribute('src') || '';
      show(ev.currentTarget, false);
    });
    $('show-inbox').addEventListener('click', async () => {
      const open = $('inbox').hidden;
      show($('inbox'), open);
      $('show-inbox').setAttribute('aria-expanded', String(open));
      if (open) {
        show($('card'), false);
        await act(null, () => loadInbox(false));
        $('h-inbox').scrollIntoView();
      } else if (page.card) {
        show($('card'), true);
      }
    });
    $('show-card').addEventListener('click', () => {
      show($('inbox'), false);
      $('show-inbox').setAttribute('aria-expanded', 'false');
      if (page.card) show($('card'), true);
    });
    $('inbox-more').addEventListener('click', () => act(null, () => loadInbox(true)));
    $('open-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const ext = $('open-external').value.trim();
      if (!ext) return;
      params.set('external_userid', ext);
      history.replaceState(null, '', `${location.pathname}?${params}`);
      openCustomer(ext);
    });
    $('tag-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const id = $('tag-id').value.trim();
      if (!id) return;
      act(ev.currentTarget, async () => {
        await api('POST', customerPath('/tags'), { add: [id] });
        $('tag-id').value = '';
        await reloadCard();
      }, '已添加标签 / Tag added');
    });
    $('move-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const reason = $('move-reason').value.trim();
      const stage = $('move-stage').value;
      if (!reason || !stage) return;
      act(ev.currentTarget, async () => {
        await api('POST', customerPath('/stage'), { stage, reason });
        $('move-reason').value = '';
        await reloadCard();
      }, `已移至 ${stage} / Moved to ${stage}`);
    });
    $('move-cancel').addEventListener('click', () => show($('move-form'), false));
    $('contacted').addEventListener('click', (ev) => act(ev.currentTarget.parentElement, async () => {
      await api('POST', customerPath('/contacted'));
      await reloadCard();
    }, '已标记已联系 / Marked contacted'));
    $('note-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = $('note-text').value.trim();
      if (!text) return;
      const body = { type: $('note-type').value, text };
      const next = $('note-next').value;
      if (next) body.next_follow_up_at = new Date(next).toISOString();
      act(ev.currentTarget, async () => {
        await api('POST', customerPath('/notes'), body);
        $('note-text').value = '';
        $('note-next').value = '';
        await reloadCard();
      }, '已添加备注 / Note added');
    });
  }

  async function start() {
    // WeCom's sign-in page leaves its `#wechat_redirect` on the way back.
    if (location.hash === '#wechat_redirect') {
      history.replaceState(null, '', location.pathname + location.search);
    }
    wire();
    try {
      page.me = await api('GET', '/sidebar/v1/me');
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        signIn();
      } else {
        showError(e);
      }
      return;
    }
    sessionStorage.removeItem(SIGN_IN_KEY);
    const me = $('me');
    me.textContent = `${page.me.userid} · ${page.me.corp_id} (${page.me.role})`;
    me.dataset.state = 'signed-in';
    me.dataset.userid = page.me.userid;
    const ext = await customerToOpen();
    if (ext) {
      await openCustomer(ext);
    } else {
      show($('open-form'), true);
      status('请从企业微信的客户聊天打开，或输入客户的 external_userid / Open this from a WeCom customer chat, or enter a customer\'s external_userid');
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
