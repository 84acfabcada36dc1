#!/usr/bin/env python3
"""bench/soak.py — the soak of issue 11, run by bench/soak.sh (which installs
scriptmail set-uid, writes /etc/scriptmail/scriptmail.toml, creates the
accounts, and restores everything afterwards).

    soak.py run --state DIR --bin DIR --port N --accounts a,b,... [knobs]
        Starts the smarthost (a thread of this process), relayd (as the
        service user), one PHP producer per account (runuser + php-cli
        mail()), then drives block/unblock/purge cycles, sweeps and relayd
        restarts (SIGTERM and kill -9) at random intervals — none in the last
        --calm minutes, so one relayd lives long enough for its RSS trend to
        mean something — samples relayd's RSS and the database's size, and
        at the deadline lets the queue drain, lists it with
        `mailq-ctl --json` and runs `check`.
    soak.py check --state DIR
        The accounting alone, on a state directory a run left (KEEP=1).

Every accepted message (mail() returned true) must be accounted for exactly
once: sent (at the smarthost once), failed, held, expired or purged. A
message the smarthost got twice is a duplicate; it is within the
at-least-once window only when relayd was killed with SIGKILL shortly after
the first copy reached the smarthost (docs/relay.md: a crash between the
smarthost's 250 and the recording commit re-sends that message). Exit
status: 0 all accounted for, 1 lost or unexplained duplicates, 2 the run
itself failed.

Standard library only (Debian's python3).
"""

import argparse
import email
import email.policy
import json
import os
import random
import re
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

# How long after the first copy reached the smarthost a SIGKILL of relayd
# may still explain a second copy: the 250 → commit gap is milliseconds;
# the slack covers a loaded 2-core machine.
KILL_WINDOW_S = 10.0
STATES = ("held", "queued", "sending", "deferred", "sent", "failed", "expired")


def log(msg):
    print(f"soak: {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ smarthost


class Smarthost(socketserver.ThreadingTCPServer):
    """A scripted smarthost: each transaction's fate is drawn at MAIL —
    TEMPFAIL of them get 451 (half at RCPT, half after DATA), PERMFAIL get
    550/554 (same split), the rest are accepted. Every DATA outcome and
    every RCPT refusal is one line in the record file ("T KIND TOKEN QID"),
    written and flushed before the reply goes out. An accepted message's
    250 comes 0..DELAY seconds after it is recorded (a slow link or a
    loaded smarthost): a relayd killed meanwhile has a message on the wire
    that the smarthost already took — the at-least-once window, which the
    soak's kills should hit now and then."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port, record, tempfail, permfail, delay, seed):
        super().__init__(("127.0.0.1", port), SmtpSession)
        self.tempfail, self.permfail, self.delay = tempfail, permfail, delay
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.record = open(record, "a", encoding="utf-8")
        self.n = 0

    def pause(self):
        with self.lock:
            return self.rng.uniform(0, self.delay)

    def fate(self):
        with self.lock:
            r = self.rng.random()
        t, p = self.tempfail, self.permfail
        if r < t / 2:
            return "4RCPT"
        if r < t:
            return "4DATA"
        if r < t + p / 2:
            return "5RCPT"
        if r < t + p:
            return "5DATA"
        return "ACCEPT"

    def note(self, kind, token="-", qid="-"):
        with self.lock:
            self.n += 1
            self.record.write(f"{time.time():.6f} {kind} {token} {qid}\n")
            self.record.flush()
            return self.n


RECEIVED_ID = re.compile(r"\bid\s+([0-9A-Za-z]+)\s*;")


def identify(data):
    """(token, qid) of a message: X-Soak-Token, and the id of scriptmail's
    own Received: line (the first one)."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    token = (msg.get("X-Soak-Token") or "-").strip() or "-"
    qid = "-"
    for rcv in msg.get_all("Received") or []:
        m = RECEIVED_ID.search(" ".join(str(rcv).split()))
        if m:
            qid = m.group(1)
            break
    return token, qid


class SmtpSession(socketserver.StreamRequestHandler):
    timeout = 300

    def say(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        srv = self.server
        self.say("220 smarthost.soak.example.org ESMTP soak")
        fate, rcpts = None, 0
        while True:
            line = self.rfile.readline(8192)
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.wfile.write(
                    b"250-smarthost.soak.example.org\r\n250-8BITMIME\r\n"
                    b"250-SIZE 104857600\r\n250 ENHANCEDSTATUSCODES\r\n"
                )
                self.wfile.flush()
            elif verb == b"HELO":
                self.say("250 smarthost.soak.example.org")
            elif verb == b"MAIL":
                fate, rcpts = srv.fate(), 0
                self.say("250 2.1.0 ok")
            elif verb == b"RCPT":
                if fate is None:
                    self.say("503 5.5.1 MAIL first")
                elif fate == "4RCPT":
                    srv.note("4RCPT")
                    self.say("451 4.3.0 soak: try again later")
                elif fate == "5RCPT":
                    srv.note("5RCPT")
                    self.say("550 5.1.1 soak: no such user")
                else:
                    rcpts += 1
                    self.say("250 2.1.5 ok")
            elif verb == b"DATA":
                if not rcpts:
                    self.say("554 5.5.1 no valid recipients")
                    continue
                self.say("354 go ahead")
                chunks = []
                while True:
                    l = self.rfile.readline(1 << 20)
                    if not l:
                        return  # the client went away mid-DATA: nothing delivered
                    if l in (b".\r\n", b".\n"):
                        break
                    chunks.append(l[1:] if l.startswith(b".") else l)
                token, qid = identify(b"".join(chunks))
                if fate == "4DATA":
                    srv.note("4DATA", token, qid)
                    self.say("451 4.3.0 soak: try again later")
                elif fate == "5DATA":
                    srv.note("5DATA", token, qid)
                    self.say("554 5.6.0 soak: content rejected")
                else:
                    n = srv.note("ACCEPT", token, qid)
                    time.sleep(srv.pause())
                    self.say(f"250 2.0.0 ok: queued as {n}")
                fate, rcpts = None, 0
            elif verb == b"RSET":
                fate, rcpts = None, 0
                self.say("250 2.0.0 ok")
            elif verb == b"NOOP":
                self.say("250 2.0.0 ok")
            elif verb == b"QUIT":
                self.say("221 2.0.0 bye")
                return
            else:
                self.say("502 5.5.2 not implemented")


# ------------------------------------------------------------------ driver


class Driver:
    def __init__(self, a):
        self.a = a
        self.state = a.state
        self.rng = random.Random(a.seed)
        self.queue = os.path.join(a.state, "queue")
        self.events = open(os.path.join(a.state, "events.jsonl"), "a", encoding="utf-8")
        self.samples = open(os.path.join(a.state, "samples.tsv"), "a", encoding="utf-8")
        self.pids = open(os.path.join(a.state, "pids"), "a", encoding="utf-8")
        self.relayd = None
        self.producers = []

    def event(self, **kw):
        kw.setdefault("t", time.time())
        self.events.write(json.dumps(kw) + "\n")
        self.events.flush()

    def track(self, pid):
        self.pids.write(f"{pid}\n")
        self.pids.flush()

    # -- mailq-ctl
    def ctl(self, *args, record=True, timeout=300):
        t0 = time.time()
        try:
            p = subprocess.run(
                [os.path.join(self.a.bin, "mailq-ctl"), "--json", "--actor", "soak", *args],
                capture_output=True,
                timeout=timeout,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NO_COLOR": "1"},
            )
            rc, out, err = p.returncode, p.stdout, p.stderr.decode(errors="replace").strip()
        except subprocess.TimeoutExpired:
            rc, out, err = -1, b"", f"timed out after {timeout}s"
        try:
            doc = json.loads(out) if out.strip() else None
        except ValueError:
            doc = None
        if record:
            self.event(t=t0, t1=time.time(), action="ctl", args=list(args), rc=rc, out=doc, err=err)
        if rc != 0:
            log(f"mailq-ctl {' '.join(args)}: exit {rc}: {err}")
        return rc, doc

    # -- relayd
    def start_relayd(self):
        err = open(os.path.join(self.state, "relayd.err"), "a")
        p = subprocess.Popen(
            ["setpriv", f"--reuid={self.a.svc}", f"--regid={self.a.svc}", "--init-groups",
             os.path.join(self.a.bin, "scriptmail"), "relayd"],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        err.close()
        self.track(p.pid)
        self.relayd = p
        with open(os.path.join(self.state, "relayd.current"), "w") as f:
            f.write(f"{p.pid}\n")
        self.event(action="relayd-start", pid=p.pid)
        time.sleep(0.3)
        if p.poll() is not None:
            raise RuntimeError(f"relayd exited at once ({p.returncode}): see relayd.err")

    def stop_relayd(self, how):
        p = self.relayd
        if p is None:
            return
        t = time.time()
        if how == "kill9":
            p.send_signal(signal.SIGKILL)
            p.wait()
        else:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                how = "term-timeout-kill9"
                log("relayd did not stop within 60 s of SIGTERM: SIGKILL")
                p.send_signal(signal.SIGKILL)
                p.wait()
        self.event(t=t, t1=time.time(), action="relayd-stop", how=how, pid=p.pid, rc=p.returncode)
        self.relayd = None

    # -- producers
    def start_producers(self, deadline):
        for acct in self.a.accounts:
            d = os.path.join(self.state, "prod", acct)
            logf = os.path.join(d, "mail.log")
            err = open(os.path.join(d, "php.err"), "a")
            p = subprocess.Popen(
                ["runuser", "-u", acct, "--", "/usr/bin/php",
                 "-d", f"sendmail_path={os.path.join(self.a.bin, 'sendmail')} -t -i",
                 "-d", "display_errors=stderr",
                 os.path.join(self.state, "soak.php"), acct, logf, f"{deadline:.3f}", str(self.a.rate)],
                cwd=d, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": d},
            )
            err.close()
            self.track(p.pid)
            self.producers.append(p)
        self.event(action="producers-start", accounts=self.a.accounts, rate=self.a.rate, deadline=deadline)

    # -- samples
    def sample(self):
        rss = pid = ""
        if self.relayd is not None:
            pid = self.relayd.pid
            try:
                with open(f"/proc/{pid}/status") as f:
                    for l in f:
                        if l.startswith("VmRSS:"):
                            rss = l.split()[1]
            except OSError:
                pass

        def size(name):
            try:
                return os.stat(os.path.join(self.queue, name)).st_size
            except OSError:
                return 0

        drop = os.path.join(self.queue, "maildrop")
        ndrop = len(os.listdir(drop)) if os.path.isdir(drop) else 0
        self.samples.write(f"{time.time():.3f}\t{pid}\t{rss}\t{size('queue.db')}\t{size('queue.db-wal')}\t{ndrop}\n")
        self.samples.flush()

    # -- a block/unblock/purge step on one account
    def cycle(self):
        acct = self.rng.choice(self.a.accounts)
        rc, st = self.ctl("status", acct, record=False)
        if rc != 0 or not st:
            return
        state = st.get("state")
        r = self.rng.random()
        if state in ("ok", "force"):
            if r < 0.10:
                self.purge(acct)
            elif r < 0.25:
                self.ctl("block", acct, "--reason", "spam", "--note", "soak")
            else:
                self.ctl("block", acct, "--note", "soak")
        elif state == "ko":
            if r < 0.6:
                self.ctl("unblock", acct)
            else:
                self.purge(acct)
        elif state in ("spam", "bounce"):
            if r < 0.5:
                self.purge(acct)
            else:
                self.ctl("unblock", acct, "--force")
        elif state == "purging":
            self.purge(acct)

    def purge(self, acct):
        # What the account has pending just before, for the record.
        _, before = self.ctl("queue", "--account", acct, "--limit", "100000000", record=False)
        pending = [m.get("subject", "") for m in (before or {}).get("messages", [])]
        self.event(action="purge-before", account=acct, pending=pending)
        self.ctl("purge", acct, "--yes")

    # -- the whole run
    def run(self):
        a = self.a
        srv = Smarthost(a.port, os.path.join(self.state, "smarthost.log"), a.tempfail, a.permfail,
                        a.data_delay, a.seed)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.event(action="smarthost-start", port=a.port, tempfail=a.tempfail, permfail=a.permfail,
                   data_delay=a.data_delay)
        self.start_relayd()
        start = time.time()
        deadline = start + a.minutes * 60
        self.start_producers(deadline)
        log(f"running until {time.strftime('%H:%M:%S', time.localtime(deadline))}: "
            f"{len(a.accounts)} accounts x {a.rate}/s")
        nxt = {
            "sample": start,
            "sweep": start + a.sweep,
            "restart": start + self.rng.uniform(a.restart_min, a.restart_max),
            "cycle": start + self.rng.uniform(a.cycle_min, a.cycle_max),
        }
        while time.time() < deadline:
            now = time.time()
            if now >= nxt["sample"]:
                self.sample()
                nxt["sample"] = now + a.sample
            if now >= nxt["sweep"]:
                self.ctl("sweep")
                nxt["sweep"] = now + a.sweep
            if now >= nxt["cycle"]:
                self.cycle()
                nxt["cycle"] = now + self.rng.uniform(a.cycle_min, a.cycle_max)
            if now >= nxt["restart"] and now < deadline - a.calm * 60:
                how = self.rng.choice(("term", "kill9"))
                log(f"relayd restart ({how})")
                self.stop_relayd(how)
                time.sleep(self.rng.uniform(0, 3))  # submissions meanwhile use the fallback
                self.start_relayd()
                nxt["restart"] = time.time() + self.rng.uniform(a.restart_min, a.restart_max)
            time.sleep(0.2)
        log("deadline: waiting for the producers")
        for p in self.producers:
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                log(f"producer {p.pid} still running 120 s after the deadline: killed")
                self.event(action="producer-killed", pid=p.pid)
                p.kill()
                p.wait()
        self.event(action="producers-done")
        # Drain: held mail stays held; the rest must reach a final state.
        self.ctl("sweep")
        log("draining the queue")
        t_end = time.time() + a.drain
        pending = None
        while time.time() < t_end:
            self.sample()
            rc, doc = self.ctl("status", record=False)
            if rc == 0 and doc is not None:
                pending = sum(
                    x["queue"]["queued"] + x["queue"]["deferred"] + x["queue"]["sending"]
                    for x in doc.get("accounts", [])
                )
                drop = os.path.join(self.queue, "maildrop")
                if os.path.isdir(drop):
                    pending += len(os.listdir(drop))
                if pending == 0:
                    break
            time.sleep(2)
        self.event(action="drained", pending=pending)
        if pending:
            log(f"{pending} message(s) still pending after {a.drain} s of draining")
        time.sleep(1)
        self.sample()
        self.stop_relayd("term")
        final = os.path.join(self.state, "final")
        os.makedirs(final, exist_ok=True)
        for st in STATES:
            rc, doc = self.ctl("queue", "--state", st, "--limit", "100000000", record=False)
            if rc != 0 or doc is None:
                raise RuntimeError(f"mailq-ctl queue --state {st} failed")
            with open(os.path.join(final, f"{st}.json"), "w") as f:
                json.dump(doc, f)
        rc, doc = self.ctl("status", record=False)
        with open(os.path.join(final, "status.json"), "w") as f:
            json.dump(doc, f)
        for acct in a.accounts:
            rc, doc = self.ctl("errors", acct, "--limit", "100000000", record=False)
            with open(os.path.join(final, f"errors.{acct}.json"), "w") as f:
                json.dump(doc, f)
        srv.shutdown()
        srv.record.close()
        self.event(action="end")


# ------------------------------------------------------------------ accounting


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def slope_per_min(points):
    """Least-squares slope of (t, v) in v per minute; None below 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if den == 0:
        return None
    return 60 * sum((t - mt) * (v - mv) for t, v in points) / den


def check(state, out=sys.stdout):
    """Account for every accepted message; print the summary; return the
    exit status (0 ok, 1 lost or unexplained duplicates)."""
    p = lambda *x: print(*x, file=out)
    events = load_jsonl(os.path.join(state, "events.jsonl"))
    accounts = sorted(os.listdir(os.path.join(state, "prod")))

    # What the producers handed over.
    accepted, refused = {}, {}
    for acct in accounts:
        with open(os.path.join(state, "prod", acct, "mail.log")) as f:
            for l in f:
                parts = l.split()
                if len(parts) != 4:
                    continue
                token, ok, t0, t1 = parts[0], parts[1], float(parts[2]), float(parts[3])
                (accepted if ok == "1" else refused)[token] = (acct, t0, t1)

    # What the queue says at the end.
    rows = defaultdict(list)
    other_rows = 0
    for st in STATES:
        with open(os.path.join(state, "final", f"{st}.json")) as f:
            for m in json.load(f).get("messages", []):
                subj = m.get("subject", "")
                if subj.startswith("soak "):
                    rows[subj[5:]].append((m["qid"], m["state"], m["account"]))
                else:
                    other_rows += 1

    # What the smarthost got.
    deliveries = defaultdict(list)
    refusals = Counter()
    with open(os.path.join(state, "smarthost.log")) as f:
        for l in f:
            t, kind, token, qid = l.split()
            if kind == "ACCEPT":
                deliveries[token].append((float(t), qid))
            else:
                refusals[kind] += 1

    stops = [e for e in events if e["action"] == "relayd-stop"]
    kills = [e["t"] for e in stops if "kill9" in e["how"]]
    terms = [e["t"] for e in stops if e["how"] == "term"]
    dropped = Counter()
    purges = Counter()
    # Tokens seen pending just before a purge of their account: the likely
    # purged ones (mail that came between the look and the purge is too).
    seen_before_purge = {
        subj[5:] for e in events if e["action"] == "purge-before" for subj in e["pending"]
        if subj.startswith("soak ")
    }
    ctl_fail = Counter()
    actions = Counter()
    for e in events:
        if e["action"] != "ctl":
            continue
        verb = e["args"][0]
        if e["rc"] != 0:
            ctl_fail[f"{verb}: {e['err']}"] += 1
            continue
        actions[verb if verb != "block" or "spam" not in e["args"] else "block spam"] += 1
        if verb == "purge" and e["out"]:
            dropped[e["out"]["account"]] += e["out"]["dropped"]
            purges[e["out"]["account"]] += 1

    def after_kill(t, ks):
        return any(0 <= k - t <= KILL_WINDOW_S for k in ks)

    tally = Counter()
    findings = defaultdict(list)
    missing = defaultdict(list)  # account -> tokens with no row (purged, or lost)
    for token, (acct, t0, t1) in accepted.items():
        rs, ds = rows.get(token, []), deliveries.get(token, [])
        if len(rs) > 1:
            findings["queued more than once (two rows for one mail())"].append(token)
        if len(rs) == 0:
            missing[acct].append(token)
            if ds:
                # Delivered, its record lost to a SIGKILL, requeued, then
                # dropped by a purge: at-least-once, and counted as purged.
                if after_kill(ds[0][0], kills):
                    tally["purged after a delivery (kill -9 window)"] += 1
                else:
                    findings["at the smarthost but gone from the queue"].append(token)
            continue
        qid, st, racct = rs[0]
        if racct != acct:
            findings["in the queue under another account"].append(token)
        for _, dq in ds:
            if dq != qid:
                findings["delivered under another queue id"].append(f"{token} {dq}≠{qid}")
        expected = 1 if st == "sent" else 0
        extra = len(ds) - expected
        if st == "sent" and not ds:
            findings["sent in the queue, never at the smarthost"].append(token)
        elif st in ("queued", "deferred", "sending"):
            tally[f"pending at the end ({st})"] += 1
        else:
            tally[st] += 1
        if extra > 0:
            first = ds[0][0]
            if after_kill(first, kills):
                tally["duplicates within the kill -9 window"] += extra
            elif after_kill(first, terms):
                findings["duplicate after a SIGTERM of relayd"].append(token)
            else:
                findings["duplicate, no relayd kill explains it"].append(token)

    lost = 0
    purged = 0
    for acct in accounts:
        n_missing = len(missing[acct])
        purged += min(n_missing, dropped[acct])
        if n_missing > dropped[acct]:
            lost += n_missing - dropped[acct]
            # Those never seen pending before a purge first: the suspects.
            suspects = sorted(missing[acct], key=lambda t: (t in seen_before_purge, t))
            findings[f"{acct}: {n_missing} mail() accepted but nowhere, purges dropped "
                     f"{dropped[acct]} (suspects first)"] = suspects
        elif n_missing < dropped[acct]:
            findings[f"{acct}: purges dropped {dropped[acct]}, only {n_missing} soak messages are missing"] = []
    tally["purged"] = purged - tally["purged after a delivery (kill -9 window)"]

    unknown = [t for t in deliveries if t not in accepted]
    for t in unknown:
        if t in refused:
            findings["mail() returned false, yet delivered"].append(t)
        elif t != "-":
            findings["delivered, never submitted by a producer"].append(t)
    for t in rows:
        if t not in accepted and t in refused:
            findings["mail() returned false, yet queued"].append(t)

    # ---- report
    start = min((e["t"] for e in events), default=0)
    end = max((e["t"] for e in events), default=0)
    p(f"### soak — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(start))}, {(end - start) / 60:.1f} min")
    p()
    p(f"- accounts: {', '.join(accounts)} (real users; PHP mail() through the set-uid sendmail)")
    p(f"- relayd stops: {len(terms)} SIGTERM, {len(kills)} SIGKILL; sweeps: {actions['sweep']}; "
      f"blocks: {actions['block']} (+{actions['block spam']} spam), unblocks: {actions['unblock']}, purges: {actions['purge']}")
    p(f"- smarthost: {sum(len(v) for v in deliveries.values())} accepted, "
      + ", ".join(f"{k} {v}" for k, v in sorted(refusals.items())))
    p()
    p("| outcome | messages |")
    p("|---|---|")
    p(f"| mail() returned true (accepted) | {len(accepted)} |")
    p(f"| mail() returned false | {len(refused)} |")
    for k in ("sent", "failed", "held", "expired", "purged", "purged after a delivery (kill -9 window)"):
        p(f"| {k} | {tally[k]} |")
    for k in sorted(t for t in tally if t.startswith("pending")):
        p(f"| {k} | {tally[k]} |")
    p(f"| **lost** | **{lost}** |")
    p(f"| duplicates within the kill -9 window (at-least-once) | {tally['duplicates within the kill -9 window']} |")
    unexplained = sum(len(v) for k, v in findings.items() if k.startswith("duplicate"))
    p(f"| **duplicates outside it** | **{unexplained}** |")
    accounted = sum(tally[k] for k in ("sent", "failed", "held", "expired", "purged",
                                       "purged after a delivery (kill -9 window)")) + \
        sum(tally[k] for k in tally if k.startswith("pending"))
    p(f"| accounted for (sum of the outcomes above) | {accounted} of {len(accepted)} |")
    p()
    p(f"Purges dropped: {dict(dropped)}; queue rows that are not soak mail: {other_rows}.")

    # relayd RSS, per incarnation, and the database over time.
    samples = []
    with open(os.path.join(state, "samples.tsv")) as f:
        for l in f:
            t, pid, rss, db, wal, drop = (l.rstrip("\n").split("\t") + [""] * 6)[:6]
            samples.append((float(t), pid, int(rss) if rss else None, int(db), int(wal), int(drop or 0)))
    by_pid = defaultdict(list)
    for t, pid, rss, *_ in samples:
        if rss is not None:
            by_pid[pid].append((t, rss))
    p()
    p("relayd VmRSS (KiB) per incarnation (sampled):")
    p()
    p("| pid | lived (s) | samples | first | last | max | trend KiB/min after its first minute |")
    p("|---|---|---|---|---|---|---|")
    longest = None
    fmt = lambda sl: "-" if sl is None else f"{sl:+.1f}"
    for pid, pts in by_pid.items():
        # Its first minute is warm-up (caches, thread stacks, SQLite's page
        # cache filling): the trend is taken after it.
        warm = [x for x in pts if x[0] - pts[0][0] >= 60]
        lived = pts[-1][0] - pts[0][0]
        p(f"| {pid} | {lived:.0f} | {len(pts)} | {pts[0][1]} | {pts[-1][1]} | {max(v for _, v in pts)} | "
          f"{fmt(slope_per_min(warm))} |")
        if longest is None or lived > longest[0]:
            longest = (lived, pid, warm)
    if by_pid:
        all_rss = [v for pts in by_pid.values() for _, v in pts]
        p()
        p(f"RSS over all incarnations: min {min(all_rss)}, max {max(all_rss)} KiB; the longest-lived "
          f"({longest[0]:.0f} s): {fmt(slope_per_min(longest[2]))} KiB/min after its first minute"
          + (f", {longest[2][0][1]} → {longest[2][-1][1]} KiB" if longest[2] else "") + ".")
    if samples:
        t0 = samples[0][0]
        p()
        p("queue.db and its WAL over time (bytes; sampled):")
        p()
        p("| minute | queue.db | -wal | maildrop files |")
        p("|---|---|---|---|")
        shown = -1
        for t, _, _, db, wal, drop in samples:
            m = int((t - t0) // 60)
            if m != shown:
                p(f"| {m} | {db} | {wal} | {drop} |")
                shown = m
        last = samples[-1]
        p(f"| end | {last[3]} | {last[4]} | {last[5]} |")
        dbs = [s[3] + s[4] for s in samples]
        p()
        p(f"db+wal: max {max(dbs)} bytes, {max(dbs) / max(len(accepted), 1):.0f} bytes per accepted message at most; "
          f"WAL max {max(s[4] for s in samples)} bytes.")
    relayd_err = os.path.join(state, "relayd.err")
    if os.path.exists(relayd_err):
        with open(relayd_err, errors="replace") as f:
            panics = [l.strip() for l in f if "panicked" in l]
        if panics:
            findings["relayd panicked"] = panics[:5]
    if ctl_fail:
        p()
        p("mailq-ctl failures: " + "; ".join(f"{k} (x{v})" for k, v in ctl_fail.items()))
    if findings:
        p()
        p("Findings:")
        for k, v in findings.items():
            p(f"- {k}: {len(v)} {' '.join(map(str, v[:10]))}")
    bad = lost > 0 or unexplained > 0 or any(
        k.startswith(("queued more than once", "sent in the queue", "at the smarthost but gone",
                      "delivered under another", "in the queue under another"))
        for k in findings)
    p()
    p(f"verdict: {'FAIL' if bad else 'ok'} — every accepted message accounted for exactly once"
      f"{'' if not bad else ' is NOT true'}")
    return 1 if bad else 0


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--state", required=True)
    r.add_argument("--bin", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--accounts", required=True)
    r.add_argument("--svc", default="scriptmail")
    r.add_argument("--minutes", type=float, default=30)
    r.add_argument("--rate", type=float, default=2.5)
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--sample", type=float, default=10)
    r.add_argument("--sweep", type=float, default=30)
    r.add_argument("--restart-min", type=float, default=30)
    r.add_argument("--restart-max", type=float, default=120)
    r.add_argument("--calm", type=float, default=None,
                   help="minutes at the end without relayd restarts (default: a third of the run)")
    r.add_argument("--cycle-min", type=float, default=10)
    r.add_argument("--cycle-max", type=float, default=30)
    r.add_argument("--drain", type=float, default=300)
    r.add_argument("--tempfail", type=float, default=0.10)
    r.add_argument("--permfail", type=float, default=0.02)
    r.add_argument("--data-delay", type=float, default=0.1,
                   help="the smarthost's 250 to an accepted message comes 0..this many seconds late")
    c = sub.add_parser("check")
    c.add_argument("--state", required=True)
    a = ap.parse_args()
    if a.cmd == "check":
        return check(a.state)
    a.accounts = a.accounts.split(",")
    if a.calm is None:
        a.calm = a.minutes / 3
    if a.seed is None:
        a.seed = int.from_bytes(os.urandom(4), "little")
    d = Driver(a)
    d.event(action="run", seed=a.seed, args={k: v for k, v in vars(a).items()})
    log(f"seed {a.seed}")
    try:
        d.run()
    except Exception as e:  # the run failed: say so, leave the state for a look
        log(f"run failed: {e}")
        d.event(action="failed", error=str(e))
        if d.relayd is not None:
            d.relayd.kill()
        for p in d.producers:
            p.kill()
        return 2
    with open(os.path.join(a.state, "summary.md"), "w") as f:
        status = check(a.state, f)
    with open(os.path.join(a.state, "summary.md")) as f:
        sys.stdout.write(f.read())
    return status


if __name__ == "__main__":
    sys.exit(main())
