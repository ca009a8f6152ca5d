#!/usr/bin/env python3
"""The JSON side of scripts/demo.sh: the pool's JSON-RPC, the bounded waits with their progress
lines, the snapshot of the live RPC answers, and the audit's summary with its checks.

    demo.py up PID HOST:PORT SECS        wait until the pool answers RPC and Stratum
    demo.py mine SECS MIN MAX CAP        progress while the miners mine; returns after SECS once
                                         MIN blocks are found, or at MAX blocks, or after CAP s
    demo.py settle SECS                  wait until every candidate is judged and node2 has
                                         node1's tip
    demo.py wait WHAT SECS CONDITION     wait (bounded) for matured | sent | in_mempool | confirmed
    demo.py snapshot FILE                save the pool's live RPC answers
    demo.py summary DIR VERIFY POOL PAYOUT SECS AUDIT
                                         the audit's checks and the summary, ending with the
                                         verdict of `obtc-pool audit` (DIR/audit.txt's last line;
                                         AUDIT: its exit status)

Settings come from the environment demo.sh exports (DEMO_RPC_URL, DEMO_NODE_BIN, DEMO_NODES,
DEMO_POOL_ADDRESS, DEMO_MIN_PAYMENT, DEMO_CONFIRMATIONS, DEMO_HEIGHT0). Every wait is bounded
and says what it waited for when it gives up. Amounts in the ledger and the RPC are satoshis.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ENV = os.environ
WIDTH = 96  # of the summary


class RpcError(Exception):
    def __init__(self, error):
        super().__init__(error.get("message", str(error)))
        self.code = error.get("code")


def rpc(method, params=None, timeout=10):
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    req = urllib.request.Request(
        ENV["DEMO_RPC_URL"], json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            doc = json.load(reply)
    except urllib.error.HTTPError as e:  # jsonrpsee answers some errors with a 4xx/5xx status
        doc = json.load(e)
    if doc.get("error"):
        raise RpcError(doc["error"])
    return doc["result"]


def try_rpc(method, params=None, timeout=10):
    """The result, or None when the method is not in this build or the call failed."""
    try:
        return rpc(method, params, timeout)
    except (RpcError, OSError, ValueError):
        return None


def cli(node, *args, parse=True):
    cmd = [
        os.path.join(ENV["DEMO_NODE_BIN"], "bitcoin-cli"),
        "-regtest",
        "-datadir=%s/node%d" % (ENV["DEMO_NODES"], node),
        "-rpcclienttimeout=30",
        *[str(a) for a in args],
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("bitcoin-cli %s: %s" % (" ".join(map(str, args)), out.stderr.strip()))
    text = out.stdout.strip()
    if not parse:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def sats(coins):
    """A node's amount (coins, a JSON float) in satoshis."""
    return round(float(coins) * 100_000_000)


def coins(s):
    return "%d.%08d" % divmod(int(s), 100_000_000) if s >= 0 else "-" + coins(-s)


# ---------------------------------------------------------------------------------------------
# What the pool says now

def hashrate(h):
    return "%.1f MH/s" % (h / 1e6) if h >= 1e6 else "%.0f kH/s" % (h / 1e3)


def mining_line(h0):
    stats = try_rpc("pool_stats")
    if stats:
        b = stats["blocks"]
        found = b["found"] + b["pending"]
        return found, "%d blocks, %d shares, %s" % (
            found, stats["shares_total"], hashrate(stats["hashrate"]["h1m"]))
    # Without pool_stats (an older build): the node's chain and the ledger's head.
    found = int(cli(1, "getblockcount")) - h0
    status = try_rpc("pool_status") or {}
    seq = (status.get("ledger") or {}).get("seq", 0)
    return found, "%d blocks, %d ledger records" % (found, seq)


class Gone(Exception):
    """demo.sh, which runs this, is gone: stop waiting."""


def orphaned():
    if os.getppid() == 1:
        raise Gone()


def polled(fn, *args):
    """fn(*args), or (None, why) when a node or the pool does not answer this time."""
    orphaned()
    try:
        return fn(*args)
    except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        return None, "no answer: %s" % str(e).splitlines()[0][:80]


def cmd_up(pid, stratum, secs):
    host, port = stratum.rsplit(":", 1)
    deadline = time.time() + float(secs)
    while time.time() < deadline:
        try:
            os.kill(int(pid), 0)
        except OSError:
            print("  the pool exited at start (see pool.log)")
            return 1
        if try_rpc("pool_status", timeout=2) is not None:
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
                print("  the pool answers JSON-RPC and Stratum (%s)" % stratum)
                return 0
            except OSError:
                pass
        time.sleep(0.2)
    print("  timed out after %s s waiting for the pool's JSON-RPC and Stratum %s" % (secs, stratum))
    return 1


def cmd_mine(secs, min_blocks, max_blocks, cap):
    secs, min_blocks, max_blocks, cap = float(secs), int(min_blocks), int(max_blocks), float(cap)
    h0 = int(ENV["DEMO_HEIGHT0"])
    start = time.time()
    every = 3 if secs <= 30 else 5
    found = 0
    while True:
        elapsed = time.time() - start
        left = max(0, secs - elapsed)
        found, line = polled(mining_line, h0)
        found = found or 0
        if elapsed >= secs and found >= min_blocks:
            print("  mining done after %d s: %s" % (elapsed, line))
            return 0
        if found >= max_blocks:
            print("  mining done after %d s at %d blocks (enough for the demo): %s"
                  % (elapsed, max_blocks, line))
            return 0
        if elapsed >= cap:
            print("  mining stopped at the cap of %d s with %s (wanted %d blocks)"
                  % (cap, line, min_blocks))
            return 1
        if left > 0:
            print("  mining: %d s left, %s" % (round(left), line), flush=True)
        else:
            print("  mining: past %d s, waiting for %d blocks (at most %d s more): %s"
                  % (secs, min_blocks, cap - elapsed, line), flush=True)
        time.sleep(min(every, max(0.5, cap - elapsed)))


def cmd_settle(secs):
    deadline = time.time() + float(secs)
    what = "every block candidate to be judged by the node, and node2 to have node1's tip"
    def settled():
        stats = try_rpc("pool_stats")
        pending = stats["blocks"]["pending"] if stats else 0
        tip1 = cli(1, "getbestblockhash", parse=False)
        tip2 = cli(2, "getbestblockhash", parse=False)
        return pending == 0 and tip1 == tip2, "%d pending" % pending

    while time.time() < deadline:
        if polled(settled)[0]:
            print("  node2 has node1's tip (height %s); no candidate awaits a verdict"
                  % cli(1, "getblockcount"))
            return 0
        time.sleep(0.3)
    print("  timed out after %s s waiting for %s" % (secs, what))
    return 1


def condition(name, state, stats):
    """(holds, a short description of where things are)."""
    pool = ENV["DEMO_POOL_ADDRESS"]
    opened = state["open_payments"]
    if name == "matured":
        if stats:
            b = stats["blocks"]
            done = b["pending"] == 0 and b["immature"] == 0 and b["matured"] > 0
            return done, "%d matured, %d immature, %d orphaned" % (
                b["matured"], b["immature"], b["orphaned"])
        payable = [p for p in state["payable"] if p["address"] != pool]
        return bool(payable), "%d addresses payable" % len(payable)
    if name == "sent":
        done = bool(opened) and all(p["status"].lower() == "sent" for p in opened)
        desc = "open payments: %s" % (
            ", ".join("#%d %s" % (p["payment_id"], p["status"].lower()) for p in opened) or "none")
        report = ((stats or {}).get("payout") or {}).get("last_report")
        if not done and report:
            # Why nothing is paid yet, in the payout process's own words (a guard, the wallet).
            desc += "; payout process: %s: %s" % (report["state"], report["message"])
        return done, desc
    if name == "in_mempool":
        txids = [p["txid"] for p in opened if p.get("txid")]
        mempool = set(cli(2, "getrawmempool"))
        missing = [t for t in txids if t not in mempool]
        return bool(txids) and not missing, "%d of %d in node2's mempool" % (
            len(txids) - len(missing), len(txids))
    if name == "confirmed":
        unpaid = [p for p in state["payable"]
                  if p["address"] != pool and p["payable"] >= int(ENV["DEMO_MIN_PAYMENT"])]
        done = not opened and not unpaid and state["next_payment_id"] > 0
        return done, "%d open payments, %d miners payable" % (len(opened), len(unpaid))
    raise SystemExit("unknown condition " + name)


def cmd_wait(what, secs, name):
    secs = float(secs)
    start = time.time()
    last_print = start
    desc = "no answer from the pool"
    while time.time() - start < secs:
        state = try_rpc("payout_state")
        if state is not None:
            done, desc = polled(condition, name, state, try_rpc("pool_stats"))
            if done:
                print("  %s: done after %.0f s (%s)" % (what, time.time() - start, desc))
                return 0
        if time.time() - last_print >= 3:
            print("  waiting for %s: %d s left (%s)" % (
                what, round(secs - (time.time() - start)), desc), flush=True)
            last_print = time.time()
        time.sleep(0.3)
    print("  timed out after %d s waiting for %s (%s)" % (secs, what, desc))
    return 1


def cmd_snapshot(path):
    """The running pool's answers, saved before it stops, for the summary to set beside the
    audit. A method this build lacks is saved as {"error": ...}."""
    miners = read_miners(os.path.dirname(path))
    addresses = [a for _, a in miners] + [ENV["DEMO_POOL_ADDRESS"]]

    def call(method, params=None, timeout=10):
        try:
            return rpc(method, params, timeout)
        except RpcError as e:
            return {"error": str(e), "code": e.code}
        except (OSError, ValueError) as e:
            return {"error": str(e)}

    snap = {
        "pool_status": call("pool_status"),
        "payout_state": call("payout_state"),
        "pool_stats": call("pool_stats"),
        "ledger_head": call("ledger_head"),
        "blocks_list": call("blocks_list", [None, 1000]),
        "payments_list": call("payments_list", [None, 1000]),
        "miner_balance": {a: call("miner_balance", [a]) for a in addresses},
        "ledger_verify": call("ledger_verify", [], timeout=60),
    }
    with open(path, "w") as f:
        json.dump(snap, f, indent=1)
    have = [m for m, v in snap.items() if m != "miner_balance" and live(snap, m)]
    if all(live(snap["miner_balance"], a) for a in addresses):
        have.append("miner_balance")
    print("  saved the pool's live RPC answers (%s) to %s" % (", ".join(have), path))
    return 0


def read_miners(demo_dir):
    with open(os.path.join(demo_dir, "miners.txt")) as f:
        return [tuple(line.split()) for line in f if line.strip()]


# ---------------------------------------------------------------------------------------------
# The summary

class Checks:
    def __init__(self):
        self.ok = 0
        self.failed = []

    def line(self, label, text, good):
        """One summary line; good=None: information, no check."""
        mark = "" if good is None else ("ok" if good else "FAILED")
        if good is True:
            self.ok += 1
        elif good is False:
            self.failed.append(label.strip() + ": " + text)
        print(("%-10s %-82s %s" % (label, text, mark)).rstrip())


def live(snap, method):
    """A live RPC answer, or None when this build of the pool lacks the method."""
    v = snap.get(method)
    if v is None or (isinstance(v, dict) and "error" in v):
        return None
    return v


def cmd_summary(*args):
    try:
        return summary(*args)
    except Exception as e:  # a node that stopped answering, a report of another shape
        print("FAILED: the audit could not finish: %s: %s" % (type(e).__name__, e))
        return 1


def audit_verdict(demo_dir):
    """The last line of `obtc-pool audit`'s report (its verdict), or None."""
    try:
        with open(os.path.join(demo_dir, "audit.txt")) as f:
            lines = [line.rstrip() for line in f if line.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


def summary(demo_dir, verify_status, pool_status, payout_status, secs, audit_status="1"):
    with open(os.path.join(demo_dir, "balances.json")) as f:
        try:
            audit = json.load(f)
        except ValueError:
            audit = None
    with open(os.path.join(demo_dir, "rpc-live.json")) as f:
        snap = json.load(f)
    miners = read_miners(demo_dir)
    pool = ENV["DEMO_POOL_ADDRESS"]
    confirmations = int(ENV["DEMO_CONFIRMATIONS"])
    shares = {}
    with open(os.path.join(demo_dir, "dump.jsonl")) as f:
        for line in f:
            ev = json.loads(line)["event"]
            # Shares with their work (what the pool writes) and without (older ledgers).
            share = None
            if isinstance(ev, dict) and "ShareWithWork" in ev:
                share = ev["ShareWithWork"].get("share") or {}
            elif isinstance(ev, dict) and "ShareAccepted" in ev:
                share = ev["ShareAccepted"]
            if share is not None:
                a = share.get("address")
                shares[a] = shares.get(a, 0) + 1
            elif isinstance(ev, dict) and "ShareWithWork" in ev:
                a = ev["ShareWithWork"]["share"].get("address")
                shares[a] = shares.get(a, 0) + 1

    c = Checks()
    head = (audit or {}).get("head") or {}
    print()
    print("\033[1m%s\033[0m" % (" SUMMARY (%s s, ledger seq %s) " % (secs, head.get("seq"))).center(WIDTH, "="))
    if audit is None:
        c.line("ledger", "`obtc-pool ledger balances --json` gave no report (see balances.txt)", False)
        return finish(c)

    # Blocks: the ledger's, each checked on node1's chain; the pool's live count beside them.
    blocks = audit["blocks"]
    by_status = {}
    for b in blocks:
        by_status[b["status"]] = by_status.get(b["status"], 0) + 1
    found, orphaned = len(blocks), by_status.get("Orphaned", 0)
    matured, immature = by_status.get("Matured", 0), by_status.get("Immature", 0)
    on_chain = 0
    wrong = []
    for b in blocks:
        at_height = cli(1, "getblockhash", b["height"], parse=False)
        if (at_height == b["block_id"]) == (b["status"] != "Orphaned"):
            on_chain += 1
        else:
            wrong.append("%s at %d" % (b["block_id"][:12], b["height"]))
    heights = sorted(b["height"] for b in blocks)
    c.line("blocks", "%d found, %d orphaned, %d matured, %d immature (heights %s)" % (
        found, orphaned, matured, immature,
        "%d-%d" % (heights[0], heights[-1]) if heights else "none"),
        found > 0 and immature == 0 and not audit["open_candidates"])
    c.line("", "node1's chain: %d of %d where the ledger says (on it unless orphaned)%s" % (
        on_chain, found, "; wrong: " + ", ".join(wrong) if wrong else ""), not wrong)
    stats = live(snap, "pool_stats")
    if stats:
        sb = stats["blocks"]
        same = (sb["found"], sb["orphaned"], sb["matured"], sb["immature"]) == (
            found, orphaned, matured, immature)
        c.line("", "pool RPC pool_stats: %d found, %d orphaned, %d matured, %d immature; "
               "%d shares" % (sb["found"], sb["orphaned"], sb["matured"], sb["immature"],
                              stats["shares_total"]), same)
    listed = live(snap, "blocks_list")
    if listed:
        rpc_blocks = {(b["block_id"], b["status"]) for b in listed["blocks"]
                      if b["status"] not in ("pending", "rejected")}
        ledger_blocks = {(b["block_id"], b["status"].lower()) for b in blocks}
        c.line("", "pool RPC blocks_list: %d blocks, ids and statuses as in the ledger"
               % len(rpc_blocks), rpc_blocks == ledger_blocks)

    # Miners: shares, credits and payments by the ledger; what node2 received; the live RPC.
    balances = audit["balances"]
    paid_by_ledger = {}
    for p in audit["payments"]:
        if p["status"] == "Confirmed":
            for address, amount in p["outputs"]:
                paid_by_ledger[address] = paid_by_ledger.get(address, 0) + amount
    print("%-10s %-34s %6s %13s %13s %13s" % (
        "miner", "address", "shares", "credited", "paid (ledger)", "node2 got"))
    for name, address in miners:
        bal = balances.get(address) or {}
        credited = credited_sum(bal)
        paid = bal.get("paid", 0)
        received = sats(cli(2, "getreceivedbyaddress", address, 1))
        c.line(name, "%-34s %6d %13s %13s %13s" % (
            address, shares.get(address, 0), coins(credited), coins(paid), coins(received)),
            paid > 0 and received == paid == paid_by_ledger.get(address, 0))
    fee_bal = balances.get(pool) or {}
    c.line("pool fee", "%-34s %6s %13s  (stays in the pool's wallet)" % (
        pool, "", coins(credited_sum(fee_bal))), None)
    rpc_bal = live(snap, "miner_balance")
    if rpc_bal and all(live(rpc_bal, a) for a in rpc_bal):
        keys = ("immature", "payable", "in_flight", "paid", "debt", "network_fees")
        same = all(
            all(rpc_bal[a][k] == (balances.get(a) or {}).get(k, 0) for k in keys) for a in rpc_bal)
        c.line("", "pool RPC miner_balance: %d addresses, every field as in the ledger"
               % len(rpc_bal), same)

    # Payments: each txid on node1 at the configured depth, with the ledger's network fee.
    payments = audit["payments"]
    confirmed = [p for p in payments if p["status"] == "Confirmed"]
    for p in payments:
        total = sum(amount for _, amount in p["outputs"])
        txid = p.get("txid")
        good = p["status"] == "Confirmed" and txid is not None
        depth = fee = None
        if txid:
            try:
                tx = cli(1, "gettransaction", txid)
                depth, fee = tx["confirmations"], -sats(tx["fee"])
            except RuntimeError:
                pass
        good = good and depth is not None and depth >= confirmations and fee == p["network_fee"]
        c.line("payment", "#%d %s, %d outputs, %s, fee %d sat, %s conf, txid %s.." % (
            p["payment_id"], p["status"].lower(), len(p["outputs"]), coins(total),
            p["network_fee"], depth, (txid or "none")[:10]), good)
    if not payments:
        c.line("payment", "none in the ledger", False)
    plist = live(snap, "payments_list")
    if plist is not None:
        rpc_p = sorted((p["payment_id"], p["status"].lower(), p["txid"], p["total"],
                        p["network_fee"]) for p in plist["payments"])
        led_p = sorted((p["payment_id"], p["status"].lower(), p.get("txid"),
                        sum(a for _, a in p["outputs"]), p["network_fee"]) for p in payments)
        c.line("", "pool RPC payments_list: %d payments as in the ledger (states, txids, fees)"
               % len(rpc_p), rpc_p == led_p)

    # The pool's wallet: matured rewards - payments - network fees, to the satoshi.
    matured_rewards = sum(b["reward"] for b in blocks if b["status"] == "Matured")
    paid_total = sum(paid_by_ledger.values())
    fees = sum(p["network_fee"] for p in payments if p["status"] in ("Sent", "Confirmed"))
    wallet = sats(cli(1, "getbalance"))
    c.line("wallet", "node1 %s = matured %s - paid %s - fees %s" % (
        coins(wallet), coins(matured_rewards), coins(paid_total), coins(fees)),
        wallet == matured_rewards - paid_total - fees)

    # The ledger: verification, head (and the pool's live head), conservation.
    vh = live(snap, "ledger_head")
    rpc_head = (vh or {}).get("ledger") or {}
    c.line("ledger", "head seq %s hash %s..., `obtc-pool ledger verify` %s" % (
        head.get("seq"), (head.get("hash") or "")[:16],
        "passed" if int(verify_status) == 0 else "FAILED"), int(verify_status) == 0)
    if vh:
        c.line("", "pool RPC ledger_head: seq %s hash %s... (the stopped ledger's head)" % (
            rpc_head.get("seq"), (rpc_head.get("hash") or "")[:16]),
            rpc_head.get("seq") == head.get("seq") and rpc_head.get("hash") == head.get("hash"))
    lv = live(snap, "ledger_verify")
    if lv:
        v = lv["verification"]
        c.line("", "pool RPC ledger_verify: %s, %d records%s" % (
            "intact" if v["ok"] else "NOT intact", v["records"],
            "" if v["ok"] else ": " + str(v.get("problem"))), v["ok"])
    t = audit["totals"]
    tb = t["balances"]
    lhs = tb["immature"] + tb["payable"] + tb["in_flight"] + tb["paid"] + tb["network_fees"] - tb["debt"]
    c.line("conserved", "%s immature + %s payable + %s in flight" % (
        coins(tb["immature"]), coins(tb["payable"]), coins(tb["in_flight"])), None)
    c.line("", "+ %s paid + %s network fees - %s debt" % (
        coins(tb["paid"]), coins(tb["network_fees"]), coins(tb["debt"])), None)
    c.line("", "= %s; rewards of the non-orphaned blocks: %s" % (coins(lhs), coins(t["rewards"])),
           lhs == t["rewards"] and t["conserved"])
    c.line("processes", "pool exited %s, payout process exited %s (clean stops)" % (
        pool_status, payout_status), int(pool_status) == 0 and int(payout_status) == 0)

    # The independent audit of a copy of the ledger: work, money and anchors on node1's chain.
    verdict = audit_verdict(demo_dir)
    c.line("audit", "`obtc-pool audit --data COPY --config --node --check-anchors` exited %s"
           % audit_status, int(audit_status) == 0 and (verdict or "").startswith("audit: PASS"))
    return finish(c, verdict or "audit: no verdict (see %s)" % os.path.join(demo_dir, "audit.txt"))


def credited_sum(bal):
    return (bal.get("immature", 0) + bal.get("payable", 0) + bal.get("in_flight", 0)
            + bal.get("paid", 0) + bal.get("network_fees", 0) - bal.get("debt", 0))


def finish(c, last=None):
    """The result lines; `last` (the audit's verdict) ends the summary."""
    print("=" * WIDTH)
    status = 0
    if c.failed:
        print("\033[1mRESULT: %d checks ok, %d FAILED\033[0m" % (c.ok, len(c.failed)))
        for f in c.failed:
            print("  FAILED " + f)
        status = 1
    else:
        print("\033[1mRESULT: all %d checks ok\033[0m" % c.ok)
    if last is not None:
        print("\033[1m%s\033[0m" % last)
    return status


def main(argv):
    commands = {
        "up": cmd_up,
        "mine": cmd_mine,
        "settle": cmd_settle,
        "wait": cmd_wait,
        "snapshot": cmd_snapshot,
        "summary": cmd_summary,
    }
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__)
        return 2
    try:
        return commands[argv[1]](*argv[2:])
    except Gone:
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
