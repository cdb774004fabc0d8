// The connections page's script: loads the store's cards from /dashboard/api/connections, renders
// them with their health ("Reconnect Meta by 12 January" banners above the cards), starts
// connections (or asks only for missing permissions), disconnects after a confirmation, shows the
// callback's outcome (and asks before another account replaces the connected one), and lists the
// store's recent activity from /dashboard/api/activity.
// Text from the server or the URL is only ever inserted with textContent, never as HTML.
"use strict";

(function () {
  const LABELS = {
    connected: "Connected",
    expired: "Expired",
    needs_attention: "Needs attention",
    not_connected: "Not connected",
    not_configured: "Not configured",
  };

  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const cardsList = document.getElementById("cards");
  const loading = document.getElementById("loading");
  const loadError = document.getElementById("load-error");
  const retry = document.getElementById("retry");
  const emptyHint = document.getElementById("empty-hint");
  const noticeSuccess = document.getElementById("notice-success");
  const noticeError = document.getElementById("notice-error");
  const activityList = document.getElementById("activity");
  const activityEmpty = document.getElementById("activity-empty");
  const activityError = document.getElementById("activity-error");
  const dialog = document.getElementById("confirm");
  const dialogTitle = document.getElementById("confirm-title");
  const dialogText = document.getElementById("confirm-text");
  const dialogCancel = document.getElementById("confirm-cancel");
  const dialogConfirm = document.getElementById("confirm-disconnect");
  const banners = document.getElementById("banners");
  const replacePanel = document.getElementById("replace");
  const replaceText = document.getElementById("replace-text");
  const replaceConfirm = document.getElementById("replace-confirm");
  const replaceKeep = document.getElementById("replace-keep");
  const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
  const WARN_DAYS = 7;

  const postsList = document.getElementById("posts");
  const postsEmpty = document.getElementById("posts-empty");
  const postsError = document.getElementById("posts-error");
  const requireApproval = document.getElementById("require-approval");
  const POST_REASONS = {
    limit_reached: "The platform's publishing limit for this account was reached.",
    rate_limited: "The platform was busy and did not take the post in time.",
    media_rejected: "The platform refused the media.",
    media_unavailable: "The media could not be downloaded.",
    permission_missing: "The connection lacks a permission publishing needs: use Grant missing permissions.",
    account_not_eligible: "This account cannot publish through the platform's API.",
    invalid_post: "The platform refused the post's content.",
    reconnect_required: "The connection stopped working: reconnect it.",
    platform_unavailable: "The platform could not be reached in time.",
    not_supported: "The platform does not publish this kind of post.",
    not_approved: "It was not approved.",
    answer_lost: "We sent it but the platform's answer was lost: check the account before posting again.",
  };

  let pendingDisconnect = null;
  let sessionEnded = false;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      node.setAttribute(name, String(value));
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function nameOf(slug) {
    const card = slug ? document.getElementById("card-" + slug) : null;
    return card ? card.dataset.name : "";
  }

  function showNotice(kind, text) {
    const target = kind === "success" ? noticeSuccess : noticeError;
    const other = kind === "success" ? noticeError : noticeSuccess;
    other.textContent = "";
    other.classList.remove("notice--shown");
    target.textContent = text;
    target.classList.add("notice--shown");
  }

  function formatDate(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  // "12 January", with the year when it is not this year: the same words in every locale.
  function dayMonth(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    const text = date.getDate() + " " + MONTHS[date.getMonth()];
    return date.getFullYear() === new Date().getFullYear() ? text : text + " " + date.getFullYear();
  }

  // Whether a connection must be reconnected soon: the health says so, or its reconnect-by date
  // is within a week.
  function expiring(p) {
    const h = p.health;
    if (!h || !p.status) return false;
    if (h.state === "expiring") return true;
    if (!h.reconnect_by || h.state === "dead") return false;
    const left = new Date(h.reconnect_by).getTime() - Date.now();
    return Number.isFinite(left) && left < WARN_DAYS * 86400 * 1000;
  }

  // Whether the service renews the access token by itself: unless the grant ends when the access
  // token does (a platform that issued no refresh token).
  function renews(p) {
    const by = p.health && p.health.reconnect_by ? new Date(p.health.reconnect_by).getTime() : NaN;
    const expires = p.expires_at ? new Date(p.expires_at).getTime() : NaN;
    return !(Number.isFinite(by) && Number.isFinite(expires) && by <= expires);
  }

  function relative(iso) {
    const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
    if (!Number.isFinite(seconds) || typeof Intl.RelativeTimeFormat !== "function") return "";
    const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
    const abs = Math.abs(seconds);
    if (abs < 3600) return format.format(Math.round(seconds / 60), "minute");
    if (abs < 86400) return format.format(Math.round(seconds / 3600), "hour");
    return format.format(Math.round(seconds / 86400), "day");
  }

  function timeNode(iso, withRelative) {
    const node = el("time", { datetime: iso }, formatDate(iso));
    if (withRelative) {
      const rel = relative(iso);
      if (rel) node.textContent += " (" + rel + ")";
    }
    return node;
  }

  function fact(list, label, value) {
    list.append(el("dt", {}, label));
    const dd = el("dd");
    dd.append(value);
    list.append(dd);
  }

  function button(label, ariaLabel, kind, action) {
    return el("button", { type: "button", class: "button button--" + kind, "aria-label": ariaLabel, "data-action": action }, label);
  }

  function fillCard(card, p) {
    card.dataset.state = p.state;
    const badge = card.querySelector('[data-role="badge"]');
    badge.textContent = LABELS[p.state] || p.state;
    badge.className = "badge badge--" + p.state.replace(/_/g, "-");

    const body = card.querySelector('[data-role="body"]');
    body.replaceChildren();
    if (p.sandbox) {
      body.append(el("p", { class: "tag" }, "Sandbox: simulated platform"));
    }
    if (p.status) {
      const account = el("div", { class: "account" });
      const accountName = p.account_name || p.account_id || "Connected account";
      if (p.account_picture) {
        const picture = el("img", {
          class: "account__picture",
          src: p.account_picture,
          alt: "Picture of " + accountName,
          width: 40,
          height: 40,
          referrerpolicy: "no-referrer",
        });
        picture.addEventListener("error", () => picture.replaceWith(placeholder(accountName)));
        account.append(picture);
      } else {
        account.append(placeholder(accountName));
      }
      account.append(el("span", { class: "account__name", "data-role": "account-name" }, accountName));
      body.append(account);

      const facts = el("dl", { class: "facts" });
      if (p.connected_at) fact(facts, "Connected", timeNode(p.connected_at, false));
      // What the merchant acts on, not the access token's own expiry (which the service renews):
      // whether access renews by itself, and until when the grant lasts without them.
      if (p.state === "connected") {
        fact(facts, "Access", document.createTextNode(renews(p) ? "Renews automatically" : "Does not renew by itself"));
        if (p.health && p.health.reconnect_by) fact(facts, "Reconnect by", timeNode(p.health.reconnect_by, false));
      }
      body.append(facts);

      if (p.selections && p.selections.length) {
        body.append(selectionFields(p));
      }
      if (p.missing_scopes && p.missing_scopes.length) {
        body.append(el("p", { class: "warning", "data-role": "missing" }, "Missing permissions: " + p.missing_scopes.join(", ") + ". Grant them to use every feature."));
      }
      const health = healthText(p);
      if (health) {
        body.append(el("p", { class: "health health--" + p.health.state, "data-role": "health" }, health));
      }
      if (p.state === "expired") {
        body.append(el("p", { class: "muted" }, "Access has expired. Reconnect to keep campaigns running."));
      } else if (p.state === "needs_attention" && p.last_error !== "removed_at_platform") {
        body.append(el("p", { class: "muted" }, (p.last_error ? p.last_error + " " : "") + "Reconnect to restore access."));
      }
    } else if (p.state === "not_configured") {
      body.append(el("p", { class: "muted" }, p.name + " is not set up on this service yet. Ask your administrator to add its app credentials."));
    } else {
      body.append(el("p", { class: "muted" }, "Not connected. Connect your " + p.name + " account to use it in your campaigns."));
    }

    const actions = card.querySelector('[data-role="actions"]');
    actions.replaceChildren();
    if (p.configured && p.state === "not_connected") {
      actions.append(button("Connect", "Connect " + p.name, "primary", "connect"));
    }
    if (p.configured && (p.state === "expired" || p.state === "needs_attention" || needsReconnect(p))) {
      actions.append(button("Reconnect", "Reconnect " + p.name, "primary", "connect"));
    }
    if (p.configured && p.status && p.missing_scopes && p.missing_scopes.length) {
      actions.append(button("Grant missing permissions", "Grant missing permissions for " + p.name, "primary", "grant-missing"));
    }
    if (p.status) {
      actions.append(button("Disconnect", "Disconnect " + p.name, "secondary", "disconnect"));
    }
    for (const action of actions.querySelectorAll("button")) {
      action.addEventListener("click", () => {
        if (action.dataset.action === "connect") connect(action, p, false);
        else if (action.dataset.action === "grant-missing") connect(action, p, true);
        else askDisconnect(action, p);
      });
    }
  }

  // A connected card whose health asks for a reconnect offers it too.
  function needsReconnect(p) {
    const state = p.health && p.health.state;
    return p.state === "connected" && (state === "dead" || state === "refresh_failing" || expiring(p));
  }

  // The card's sentence about its health; the platform's error is shown as text only.
  function healthText(p) {
    const h = p.health;
    if (!h || !p.status) return "";
    const error = h.last_error ? " (" + h.last_error + ")" : "";
    if (h.state === "refresh_failing") {
      return "Refresh failing" + (h.since ? " since " + formatDate(h.since) : "") + error + ". We keep trying; reconnect if it lasts.";
    }
    if (h.state === "dead") {
      if (p.status === "REVOKED" && h.last_error === "removed_at_platform") {
        return "Removed at " + p.name + (h.since ? " on " + formatDate(h.since) : "") + " — reconnect to use it again.";
      }
      if (p.status === "REVOKED") return "Access revoked at " + p.name + " — reconnect" + error + ".";
      if (p.status === "EXPIRED") return "Access expired — reconnect" + error + ".";
      return "This connection stopped working — reconnect" + error + ".";
    }
    if (expiring(p) && h.reconnect_by) {
      return p.name + " cannot renew this access by itself: reconnect by " + dayMonth(h.reconnect_by) + ".";
    }
    return "";
  }

  // One banner per connection to reconnect soon, above the cards; its button starts the same
  // reconnect as the card's.
  function renderBanners(platforms) {
    banners.replaceChildren();
    for (const p of platforms) {
      if (!p.configured || !expiring(p) || !p.health.reconnect_by) continue;
      const banner = el("div", { class: "banner", role: "status", "data-platform": p.platform });
      banner.append(el("p", { class: "banner__text" }, "Reconnect " + p.name + " by " + dayMonth(p.health.reconnect_by)));
      const action = button("Reconnect", "Reconnect " + p.name, "primary", "connect");
      action.addEventListener("click", () => connect(action, p, false));
      banner.append(action);
      banners.append(banner);
    }
  }

  // One labelled select per kind of asset (default page, Instagram account, ad account...), and
  // one polite live region that announces what was saved.
  function selectionFields(p) {
    const group = el("div", { class: "selections", "data-role": "selections" });
    const status = el("p", { class: "selections__status", role: "status", "aria-live": "polite", "data-role": "selection-status" });
    for (const g of p.selections) {
      const id = "select-" + p.platform + "-" + g.kind;
      const field = el("div", { class: "field" });
      field.append(el("label", { class: "field__label", for: id }, g.label));
      const select = el("select", { class: "field__select", id: id, "data-kind": g.kind });
      if (!g.options.some((o) => o.selected)) {
        const none = el("option", { value: "" }, "Choose…");
        none.selected = true;
        select.append(none);
      }
      for (const o of g.options) {
        const option = el("option", { value: o.id }, o.name);
        if (o.selected) option.selected = true;
        select.append(option);
      }
      select.addEventListener("change", () => saveSelection(select, p, g, status));
      field.append(select);
      group.append(field);
    }
    group.append(status);
    return group;
  }

  async function saveSelection(select, p, g, status) {
    if (sessionEnded || !select.value) return;
    const chosen = select.options[select.selectedIndex].textContent;
    select.disabled = true;
    status.textContent = "Saving…";
    try {
      const response = await fetch("/dashboard/api/selection/" + encodeURIComponent(p.platform), {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ kind: g.kind, id: select.value }),
      });
      if (response.status === 401) {
        endSession();
        status.textContent = "";
        return;
      }
      if (!response.ok) {
        status.textContent = await errorMessage(response);
        return;
      }
      for (const option of select.querySelectorAll('option[value=""]')) option.remove();
      status.textContent = g.label + " saved: " + chosen + ".";
    } catch (_) {
      status.textContent = "The choice could not be saved. Check your network and try again.";
    } finally {
      select.disabled = sessionEnded;
    }
  }

  function placeholder(name) {
    return el("span", { class: "account__placeholder", "aria-hidden": "true" }, (name || "?").charAt(0).toUpperCase());
  }

  function setLoading(on) {
    cardsList.setAttribute("aria-busy", on ? "true" : "false");
    loading.hidden = !on;
  }

  function endSession() {
    sessionEnded = true;
    showNotice("error", "Your session has ended. Open this page again from your main dashboard.");
    for (const action of document.querySelectorAll(".card button, .card select")) action.disabled = true;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) {
      // Not JSON: fall through to the generic message.
    }
    return "Something went wrong (" + response.status + "). Please try again.";
  }

  async function load() {
    setLoading(true);
    loadError.hidden = true;
    try {
      const response = await fetch("/dashboard/api/connections", {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        endSession();
        return;
      }
      if (!response.ok) throw new Error("status " + response.status);
      const data = await response.json();
      let connected = 0;
      renderBanners(data.platforms);
      for (const p of data.platforms) {
        const card = document.getElementById("card-" + p.platform);
        if (!card) continue;
        fillCard(card, p);
        if (p.status) connected += 1;
      }
      emptyHint.hidden = connected !== 0;
    } catch (_) {
      loadError.hidden = false;
      emptyHint.hidden = true;
      for (const badge of document.querySelectorAll('.badge--loading')) badge.textContent = "Unavailable";
    } finally {
      setLoading(false);
    }
    await Promise.all([loadActivity(), loadPosts()]);
  }

  const OPERATIONS = {
    connect: "Connect",
    disconnect: "Disconnect",
    token: "Token handed out",
    refresh: "Token refreshed",
    proxy: "API call",
    selection: "Account selection",
  };

  function actorText(entry) {
    if (entry.actor_kind === "api_key") return "Service key " + entry.actor;
    if (entry.actor_kind === "page_user") return "User " + entry.actor;
    return "System (" + entry.actor + ")";
  }

  async function loadActivity() {
    try {
      const response = await fetch("/dashboard/api/activity", {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error("status " + response.status);
      const data = await response.json();
      activityList.replaceChildren();
      for (const entry of data.entries) {
        const item = el("li", { class: "activity__item" });
        item.append(timeNode(entry.at, false));
        const name = entry.platform ? nameOf(entry.platform) || entry.platform : "";
        // A proxied call in words ("API call to Pinterest"): the page never shows its path.
        const what = entry.operation === "proxy"
          ? "API call" + (name ? " to " + name : "")
          : (OPERATIONS[entry.operation] || entry.operation) + (name ? " · " + name : "");
        item.append(el("span", { class: "activity__what" }, what));
        item.append(el("span", { class: "activity__actor" }, actorText(entry)));
        const outcome = entry.outcome + (entry.detail ? " (" + entry.detail + ")" : "");
        item.append(el("span", { class: "activity__outcome activity__outcome--" + entry.outcome }, outcome));
        activityList.append(item);
      }
      activityEmpty.hidden = data.entries.length !== 0;
      activityError.hidden = true;
    } catch (_) {
      activityError.hidden = false;
    }
  }

  function postLine(p) {
    const item = el("li", { class: "posts__item posts__item--" + p.status, "data-post": p.id });
    const head = el("p", { class: "posts__head" });
    head.append(el("strong", {}, nameOf(p.platform) || p.platform));
    head.append(document.createTextNode(" · " + p.account.id + " · "));
    let state;
    if (p.status === "scheduled") state = "Scheduled for " + formatDate(p.publish_at);
    else if (p.status === "pending_approval") state = "Waiting for your approval";
    else if (p.status === "publishing") state = "Publishing";
    else if (p.status === "published") state = "Published " + formatDate(p.published_at || p.updated_at);
    else if (p.status === "failed") state = "Failed";
    else if (p.status === "cancelled") state = "Cancelled";
    else state = "Outcome unknown";
    head.append(el("span", { class: "posts__state", "data-role": "state" }, state));
    item.append(head);
    if (p.text) item.append(el("p", { class: "posts__text" }, p.text.length > 280 ? p.text.slice(0, 279) + "…" : p.text));
    for (const m of p.media) {
      if (m.kind === "image") item.append(el("img", { class: "posts__media", src: m.url, alt: "", loading: "lazy", referrerpolicy: "no-referrer" }));
      else item.append(el("a", { href: m.url, rel: "noopener noreferrer", target: "_blank" }, "Video"));
    }
    if (p.status === "published" && p.platform_post && p.platform_post.url) {
      item.append(el("a", { class: "posts__link", href: p.platform_post.url, rel: "noopener noreferrer", target: "_blank" }, "View the post"));
    }
    if (p.error && (p.status === "failed" || p.status === "unknown")) {
      const words = POST_REASONS[p.error.code] || "";
      item.append(el("p", { class: "posts__reason", "data-role": "reason" }, (words + " " + (p.error.message || "")).trim()));
    }
    if (p.status === "pending_approval") {
      const actions = el("div", { class: "posts__actions" });
      const approve = button("Approve", "Approve this post", "primary", "approve-post");
      const reject = button("Reject", "Reject this post", "secondary", "reject-post");
      approve.addEventListener("click", () => decidePost(p, "approve", approve));
      reject.addEventListener("click", () => decidePost(p, "reject", reject));
      actions.append(approve, reject);
      item.append(actions);
    }
    return item;
  }

  async function loadPosts() {
    try {
      const response = await fetch("/dashboard/api/posts", {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error("status " + response.status);
      const data = await response.json();
      requireApproval.checked = data.require_approval;
      postsList.replaceChildren(...data.posts.map(postLine));
      postsEmpty.hidden = data.posts.length !== 0;
      postsError.hidden = true;
    } catch (_) {
      postsError.hidden = false;
    }
  }

  async function decidePost(p, decision, action) {
    action.disabled = true;
    try {
      const response = await post("/dashboard/api/posts/" + encodeURIComponent(p.id) + "/" + decision);
      if (!response.ok) {
        showNotice("error", await errorMessage(response));
      } else {
        showNotice("success", decision === "approve" ? "Approved: the post will be published." : "Rejected: the post will not be published.");
      }
    } catch (_) {
      showNotice("error", "Couldn't reach the service. Check your network and try again.");
    }
    await loadPosts();
  }

  async function savePolicy() {
    requireApproval.disabled = true;
    try {
      const response = await fetch("/dashboard/api/posts/policy", {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ require_approval: requireApproval.checked }),
      });
      if (!response.ok) {
        requireApproval.checked = !requireApproval.checked;
        showNotice("error", await errorMessage(response));
      } else {
        showNotice("success", requireApproval.checked ? "Posts now wait for your approval." : "Posts are now published without your approval.");
      }
    } catch (_) {
      requireApproval.checked = !requireApproval.checked;
      showNotice("error", "Couldn't reach the service. Check your network and try again.");
    } finally {
      requireApproval.disabled = false;
    }
  }

  function post(path) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
    });
  }

  function navigate(url) {
    // Consent screens refuse to be framed: when the page is embedded, the whole window goes.
    if (window.top !== window.self) {
      try {
        window.top.location.href = url;
        return;
      } catch (_) {
        window.open(url, "_top");
        return;
      }
    }
    window.location.assign(url);
  }

  async function connect(action, p, missingOnly) {
    if (sessionEnded) return;
    const label = action.textContent;
    action.disabled = true;
    action.textContent = "Opening " + p.name + "…";
    try {
      const path = "/dashboard/api/connect/" + encodeURIComponent(p.platform) + (missingOnly ? "?grant=missing" : "");
      const response = await post(path);
      if (response.status === 401) {
        endSession();
        return;
      }
      if (response.ok) {
        const body = await response.json();
        navigate(body.url);
        return;
      }
      showNotice("error", "Couldn't start connecting " + p.name + ": " + (await errorMessage(response)));
    } catch (_) {
      showNotice("error", "Couldn't reach the service to connect " + p.name + ". Check your network and try again.");
    }
    action.disabled = false;
    action.textContent = label;
  }

  function askDisconnect(action, p) {
    if (sessionEnded) return;
    pendingDisconnect = { action, p };
    dialogTitle.textContent = "Disconnect " + p.name + "?";
    dialogText.textContent = "Campaigns for this store will stop using " + p.name + " until you connect it again. We will also ask " + p.name + " to revoke this app's access.";
    dialog.showModal();
    dialogCancel.focus();
  }

  async function disconnect() {
    const pending = pendingDisconnect;
    pendingDisconnect = null;
    dialog.close();
    if (!pending) return;
    const { p } = pending;
    try {
      const response = await post("/dashboard/api/disconnect/" + encodeURIComponent(p.platform));
      if (response.status === 401) {
        endSession();
        return;
      }
      if (response.ok) {
        const body = await response.json();
        showNotice("success", body.message || p.name + " is disconnected.");
      } else {
        showNotice("error", "Couldn't disconnect " + p.name + ": " + (await errorMessage(response)));
      }
    } catch (_) {
      showNotice("error", "Couldn't reach the service to disconnect " + p.name + ". Check your network and try again.");
    }
    await load();
    // The button the merchant pressed is gone: put focus on the card's new first action.
    const card = document.getElementById("card-" + p.platform);
    const next = card && card.querySelector(".card__actions button");
    if (next) next.focus();
  }

  const REASONS = {
    access_denied: "access was not granted, so nothing was connected.",
    invalid_scope: "the platform refused the permissions this service asks for, so nothing was connected. Ask the service's operator to check its scope settings.",
    link_invalid: "this connection attempt expired or was already used. Please try again.",
    state_invalid: "this connection attempt expired or was already used. Please try again.",
    state_platform_mismatch: "this connection attempt expired or was already used. Please try again.",
    browser_mismatch: "this connection attempt was started in another browser. Please start again here.",
    missing_parameter: "the platform sent an incomplete answer. Please try again.",
    platform_unavailable: "the platform did not answer in time. Please try again in a few minutes.",
    platform_rejected: "the platform refused the connection. Please try again.",
    platform_bad_response: "the platform refused the connection. Please try again.",
    platform_not_configured: "this platform is not configured on this service yet.",
    unknown_platform: "that platform is not supported.",
    storage_unavailable: "the service is temporarily unavailable. Please try again shortly.",
    state_store_unavailable: "the service is temporarily unavailable. Please try again shortly.",
    token_unreadable: "the service is temporarily unavailable. Please try again shortly.",
  };

  function showCallbackOutcome() {
    const params = new URLSearchParams(window.location.search);
    const outcome = params.get("connection");
    if (!outcome) return;
    const name = nameOf(params.get("platform") || "");
    if (outcome === "success") {
      showNotice("success", (name || "The account") + " is connected.");
    } else if (outcome === "confirm" && params.get("pending")) {
      askReplace(params.get("pending"));
    } else {
      // The text comes from this page, chosen by the reason code: a crafted link cannot make our
      // origin display words of its own (the `message` parameter is for other dashboards).
      const message = REASONS[params.get("reason")] || "Something went wrong. Please try again.";
      showNotice("error", (name ? "Couldn't connect " + name : "The connection failed") + ": " + message);
    }
    // The outcome is shown once: a reload or a shared URL must not show it again.
    window.history.replaceState(null, "", window.location.pathname);
  }

  // A reconnect signed in to another account: say so, and let the merchant replace the connected
  // account or keep it. Nothing changed until they choose.
  let pendingReplace = null;

  async function askReplace(id) {
    try {
      const response = await fetch("/dashboard/api/replacement/" + encodeURIComponent(id), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        endSession();
        return;
      }
      if (!response.ok) {
        showNotice("error", await errorMessage(response));
        return;
      }
      const r = await response.json();
      pendingReplace = id;
      replaceText.textContent = "You signed in to " + r.platform_name + " as " + r.new_account_name + ". This replaces " + r.old_account_name + ".";
      replaceKeep.textContent = "Keep " + r.old_account_name;
      replacePanel.hidden = false;
      replaceConfirm.focus();
    } catch (_) {
      showNotice("error", "Couldn't reach the service. Check your network and try again.");
    }
  }

  async function settleReplace(choice) {
    const id = pendingReplace;
    if (!id || sessionEnded) return;
    pendingReplace = null;
    replaceConfirm.disabled = true;
    replaceKeep.disabled = true;
    try {
      const response = await post("/dashboard/api/replacement/" + encodeURIComponent(id) + "/" + choice);
      if (response.status === 401) {
        endSession();
        return;
      }
      if (response.ok) {
        const body = await response.json();
        showNotice("success", body.message);
      } else {
        showNotice("error", await errorMessage(response));
      }
    } catch (_) {
      showNotice("error", "Couldn't reach the service. Check your network and try again.");
    } finally {
      replacePanel.hidden = true;
      replaceConfirm.disabled = false;
      replaceKeep.disabled = false;
    }
    await load();
  }

  replaceConfirm.addEventListener("click", () => settleReplace("confirm"));
  replaceKeep.addEventListener("click", () => settleReplace("cancel"));
  dialogCancel.addEventListener("click", () => dialog.close());
  dialogConfirm.addEventListener("click", disconnect);
  dialog.addEventListener("close", () => {
    if (pendingDisconnect) {
      const { action } = pendingDisconnect;
      pendingDisconnect = null;
      if (action.isConnected) action.focus();
    }
  });
  retry.addEventListener("click", load);
  requireApproval.addEventListener("change", savePolicy);

  showCallbackOutcome();
  load();
})();
