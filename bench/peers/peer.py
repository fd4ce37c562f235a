"""
The PyTorch peer of `npm run bench -- peers`: the ∞-former of this library written again in
PyTorch from the paper and DESIGN.md (same config, same weight names and [in, out] layout), and
a same-width full-attention transformer with a KV cache. It runs as a worker: one JSON request
per line on stdin, one JSON answer per line on stdout (bench/peers/torchPeer.ts drives it).

The model is the library's forward (src/model/model.ts), written the way a PyTorch user would:
per layer, pre-LN causal multi-head attention over [previous segment; current segment] with
rotary positions, plus continuous attention over the layer's long-term memory (Gaussian basis,
closed-form expectation), then a GELU feed-forward block. At a segment boundary each layer's
memory absorbs the finished segment through a learned gate: the first time a ridge fit, after
that a contraction (the old signal read at M uniform points onto [0, tau], the new segment on
[tau, 1], fitted again). The ridge operators are computed here in float64 from the basis.

Unlike the library, inference keeps the keys and values of the previous segment and of the
memory (computed once per segment) instead of recomputing them: the same function, less work.
"""
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---- the Gaussian basis and its ridge operators (float64, numpy) ----


def basis_of(cfg):
    widths = cfg['basisWidths']
    n = cfg['numBasis']
    centres = n // len(widths)
    mu = np.array([0.5 if centres == 1 else c / (centres - 1) for c in range(centres) for _ in widths])
    sigma = np.array([w for _ in range(centres) for w in widths], dtype=np.float64)
    return mu, sigma


def psi(t, mu, sigma):
    """psi_n(t) = N(t; mu_n, sigma_n^2): [T, N]."""
    d = np.asarray(t, dtype=np.float64)[:, None] - mu[None, :]
    return np.exp(-d * d / (2 * sigma * sigma)) / (np.sqrt(2 * np.pi) * sigma)


def ridge_transposed(positions, mu, sigma, lam, pad):
    """G^T [N, K]: B = G^T X is the ridge regression of K samples at `positions` on the basis."""
    k = len(positions)
    if pad:  # zero samples continue the grid on both sides, pulling the fit to 0 beyond [0, 1]
        p = (k + 1) // 2
        left = [-(j + 0.5) / k for j in range(p)][::-1]
        right = [1 + (j + 0.5) / k for j in range(p)]
        everywhere = np.array(left + list(positions) + right)
    else:
        p = 0
        everywhere = np.asarray(positions, dtype=np.float64)
    f = psi(everywhere, mu, sigma).T  # [N, K']
    a = f @ f.T + lam * np.eye(len(mu))
    gt = np.linalg.solve(a, f)
    return gt[:, p:p + k]


# ---- the model ----


def rotary_table(start, count, d):
    half = d // 2
    pos = np.arange(start, start + count, dtype=np.float64)[:, None]
    inv = np.power(10000.0, -2.0 * np.arange(half) / d)[None, :]
    ang = pos * inv
    return torch.tensor(np.cos(ang), dtype=torch.float32), torch.tensor(np.sin(ang), dtype=torch.float32)


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def heads(x, h):
    b, t, e = x.shape
    return x.view(b, t, h, e // h).transpose(1, 2)


def merge(x):
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class InfiniFormer:
    def __init__(self, cfg, weights):
        self.cfg = cfg
        self.w = weights
        c = cfg
        self.e, self.H, self.L = c['width'], c['numHeads'], c['segmentLength']
        self.d = self.e // self.H
        mu, sigma = basis_of(c)
        self.basis_mu = torch.tensor(mu, dtype=torch.float32)
        self.basis_var = torch.tensor(sigma * sigma, dtype=torch.float32)
        n, m, length, tau = c['numBasis'], c['numSamples'], c['segmentLength'], c['tau']
        centred = [(i + 0.5) / length for i in range(length)]
        self.fit_gt = torch.tensor(ridge_transposed(centred, mu, sigma, c['ridgeLambda'], c['ridgePad']), dtype=torch.float32)
        laid = [tau * (i + 0.5) / m for i in range(m)] + [tau + (1 - tau) * (j + 0.5) / length for j in range(length)]
        self.contract_gt = torch.tensor(ridge_transposed(laid, mu, sigma, c['ridgeLambda'], c['ridgePad']), dtype=torch.float32)
        self.read_psi = torch.tensor(psi([(i + 0.5) / m for i in range(m)], mu, sigma), dtype=torch.float32)
        self.cos, self.sin = rotary_table(0, 2 * self.L, self.d)
        self.layers = [self._layer(i) for i in range(c['numLayers'])]
        # Additive causal mask of a whole segment over [previous; current]: [L, 2L].
        i = torch.arange(self.L)[:, None]
        j = torch.arange(2 * self.L)[None, :]
        self.segment_mask = torch.where((j < self.L) | (j - self.L <= i), 0.0, -1e9)

    def _layer(self, i):
        p = f'layers.{i}.'
        return {k[len(p):]: v for k, v in self.w.items() if k.startswith(p)}

    def parameters(self):
        return list(self.w.values())

    # -- pieces --

    def smooth(self, x, lp):
        """X * sigmoid(conv3(X)), zero-padded width-3 convolution as three shifted products."""
        k = lp['ltm.gateKernel']
        prev = F.pad(x, (0, 0, 1, 0))[:, :-1]
        nxt = F.pad(x, (0, 0, 0, 1))[:, 1:]
        conv = prev @ k[0] + x @ k[1] + nxt @ k[2] + lp['ltm.gateBias']
        return x * torch.sigmoid(conv)

    def absorb(self, memory, prev_x, lp):
        """The memory for the next segment: fit the gated segment, or contract the old memory with it."""
        gated = self.smooth(prev_x, lp)
        if memory is None:
            return self.fit_gt @ gated
        old = self.read_psi @ memory
        return self.contract_gt @ torch.cat([old, gated], dim=1)

    def memory_kv(self, memory, lp):
        return heads(memory @ lp['ltm.wK'], self.H), heads(memory @ lp['ltm.wV'], self.H)

    def continuous(self, q, mem_k, mem_v, lp):
        """Continuous attention of queries q [b, T, e] over a memory's keys/values [b, H, N, d]."""
        scores = heads(q, self.H) @ mem_k.transpose(-1, -2) / math.sqrt(self.d)  # [b, H, T, N]
        mu = torch.sigmoid(scores @ lp['ltm.wMu'])  # [b, H, T]
        var = torch.clamp(F.softplus(scores @ lp['ltm.wSigma']), min=self.cfg['sigmaEps'])
        total = var[..., None] + self.basis_var
        diff = mu[..., None] - self.basis_mu
        r = torch.exp(-diff * diff / (2 * total)) * torch.rsqrt(2 * math.pi * total)
        return merge(r @ mem_v) @ lp['ltm.wO'], var

    # -- state --

    def new_state(self, b):
        L, e, H, d = self.L, self.e, self.H, self.d
        return {
            'b': b, 'pos': 0, 'started': False,
            'layers': [{
                'memory': None, 'prev_x': None, 'active': None, 'prev_k': None, 'prev_v': None, 'mem_k': None, 'mem_v': None,
                'cur_x': torch.zeros(b, L, e), 'cur_k': torch.zeros(b, H, L, d), 'cur_v': torch.zeros(b, H, L, d), 'raw_k': torch.zeros(b, H, L, d),
            } for _ in self.layers],
        }

    def start_segment(self, state):
        """Inference: at a segment start, the caches of the previous segment and the absorbed memory."""
        cos, sin = self.cos[:self.L], self.sin[:self.L]
        for lp, ls in zip(self.layers, state['layers']):
            if ls['prev_x'] is None:
                ls['prev_k'] = torch.zeros(state['b'], self.H, self.L, self.d)
                ls['prev_v'] = torch.zeros(state['b'], self.H, self.L, self.d)
                continue
            ls['prev_k'] = rotate(ls['raw_k'], cos, sin)  # kept unrotated: re-rotate to window positions 0..L-1
            ls['prev_v'] = ls['cur_v'].clone()
            ls['active'] = self.absorb(ls['memory'], ls['prev_x'], lp)
            ls['mem_k'], ls['mem_v'] = self.memory_kv(ls['active'], lp)
        state['started'] = True

    def roll_over(self, state):
        for ls in state['layers']:
            if ls['prev_x'] is not None:
                ls['memory'] = ls['active']
            ls['prev_x'] = ls['cur_x'].clone()
            ls['active'] = ls['mem_k'] = ls['mem_v'] = None
        state['pos'] = 0
        state['started'] = False

    # -- forward --

    def forward(self, state, tokens, training=False):
        """Runs tokens [b, T] (pos + T <= L) and advances the state; returns logits [b, T, V]."""
        b, t = tokens.shape
        pos = state['pos']
        L, H = self.L, self.H
        if pos == 0 and not training and not state['started']:
            self.start_segment(state)
        drop = (lambda x: F.dropout(x, self.cfg['dropout'], True)) if training else (lambda x: x)
        emb = self.w['embedding']
        h = drop(F.embedding(tokens, emb.t()))
        has_prev = state['layers'][0]['prev_x'] is not None
        mask = self.segment_mask[pos:pos + t, :L + pos + t]
        if not has_prev:
            mask = torch.cat([torch.full((t, L), -1e9), mask[:, L:]], dim=1)
        kls = []
        cos, sin = self.cos[L + pos:L + pos + t], self.sin[L + pos:L + pos + t]
        for lp, ls in zip(self.layers, state['layers']):
            if training:  # segment start inside the graph: the gate and wQKV learn through it
                prev_k, prev_v, mem_k, mem_v, active = self.train_start(lp, ls, b)
            else:
                prev_k, prev_v, mem_k, mem_v, active = ls['prev_k'], ls['prev_v'], ls['mem_k'], ls['mem_v'], ls['active']
            x = F.layer_norm(h, (self.e,), lp['ln1.gamma'], lp['ln1.beta'], 1e-5)
            q, k, v = (x @ lp['attn.wQKV']).split(self.e, dim=-1)
            kh, vh = heads(k, H), heads(v, H)
            qr, kr = rotate(heads(q, H), cos, sin), rotate(kh, cos, sin)
            if pos > 0:
                keys = torch.cat([prev_k, ls['cur_k'][:, :, :pos], kr], dim=2)
                values = torch.cat([prev_v, ls['cur_v'][:, :, :pos], vh], dim=2)
            else:
                keys = torch.cat([prev_k, kr], dim=2)
                values = torch.cat([prev_v, vh], dim=2)
            att = F.scaled_dot_product_attention(qr, keys, values, attn_mask=mask)
            a = merge(att) @ lp['attn.wO']
            if active is not None:
                ctx, var = self.continuous(q, mem_k, mem_v, lp)
                a = a + ctx
                if training:
                    ratio = var / self.cfg['klSigma0'] ** 2
                    kls.append(torch.mean(0.5 * (ratio - torch.log(ratio) - 1)))
            h = h + drop(a)
            f = F.layer_norm(h, (self.e,), lp['ln2.gamma'], lp['ln2.beta'], 1e-5)
            f = F.gelu(f @ lp['ffn.w1'] + lp['ffn.b1'], approximate='tanh') @ lp['ffn.w2'] + lp['ffn.b2']
            h = h + drop(f)
            with torch.no_grad():  # the caches (detached: truncated backpropagation through time)
                ls['cur_x'][:, pos:pos + t] = x
                ls['cur_k'][:, :, pos:pos + t] = kr
                ls['raw_k'][:, :, pos:pos + t] = kh
                ls['cur_v'][:, :, pos:pos + t] = vh
            if training:
                ls['active'] = None if active is None else active.detach()
        hidden = F.layer_norm(h, (self.e,), self.w['lnFinal.gamma'], self.w['lnFinal.beta'], 1e-5)
        logits = hidden @ emb
        state['pos'] = pos + t
        if state['pos'] == L:
            self.roll_over(state)
        kl = torch.stack(kls).mean() if kls else torch.zeros(())
        return logits, kl

    def train_start(self, lp, ls, b):
        if ls['prev_x'] is None:
            z = torch.zeros(b, self.H, self.L, self.d)
            return z, z, None, None, None
        prev_x = ls['prev_x']
        k, v = (prev_x @ lp['attn.wQKV'][:, self.e:]).split(self.e, dim=-1)
        prev_k = rotate(heads(k, self.H), self.cos[:self.L], self.sin[:self.L])
        active = self.absorb(ls['memory'], prev_x, lp)
        mem_k, mem_v = self.memory_kv(active, lp)
        return prev_k, heads(v, self.H), mem_k, mem_v, active


# ---- the full-attention transformer (same width, no memory, KV cache) ----


class FullAttention:
    """Causal pre-LN transformer with rotary positions; runs 128 new tokens against a cache of C."""

    def __init__(self, cfg, seed=7):
        g = torch.Generator().manual_seed(seed)
        e, f = cfg['width'], cfg['ffnWidth']
        self.e, self.H, self.V = e, cfg['numHeads'], cfg['vocabSize']
        self.d = e // self.H
        r = lambda *s: torch.randn(*s, generator=g) * (0.5 / math.sqrt(s[0]))
        self.emb = r(e, self.V)
        self.layers = [{'wqkv': r(e, 3 * e), 'wo': r(e, e), 'w1': r(e, f), 'b1': torch.zeros(f), 'w2': r(f, e), 'b2': torch.zeros(e),
                        'g1': torch.ones(e), 'be1': torch.zeros(e), 'g2': torch.ones(e), 'be2': torch.zeros(e)} for _ in range(cfg['numLayers'])]

    def cache(self, context, new):
        """A KV cache holding `context` positions, with room for `new` more."""
        g = torch.Generator().manual_seed(context)
        return [(torch.randn(1, self.H, context + new, self.d, generator=g), torch.randn(1, self.H, context + new, self.d, generator=g)) for _ in self.layers]

    def forward(self, cache, context, tokens):
        t = tokens.shape[1]
        cos, sin = rotary_table(context, t, self.d)
        i = torch.arange(t)[:, None]
        j = torch.arange(context + t)[None, :]
        mask = j - context <= i  # boolean: True = attend
        h = F.embedding(tokens, self.emb.t())
        for lp, (ck, cv) in zip(self.layers, cache):
            x = F.layer_norm(h, (self.e,), lp['g1'], lp['be1'], 1e-5)
            q, k, v = (x @ lp['wqkv']).split(self.e, dim=-1)
            ck[:, :, context:context + t] = rotate(heads(k, self.H), cos, sin)  # in place: a preallocated cache
            cv[:, :, context:context + t] = heads(v, self.H)
            att = F.scaled_dot_product_attention(rotate(heads(q, self.H), cos, sin), ck[:, :, :context + t], cv[:, :, :context + t], attn_mask=mask)
            h = h + merge(att) @ lp['wo']
            f = F.layer_norm(h, (self.e,), lp['g2'], lp['be2'], 1e-5)
            h = h + F.gelu(f @ lp['w1'] + lp['b1'], approximate='tanh') @ lp['w2'] + lp['b2']
        return h @ self.emb


# ---- the worker ----


def load_weights(model_dir):
    """A model directory written by the library's saveModel: config.json and float32 weights.bin."""
    with open(os.path.join(model_dir, 'config.json')) as f:
        meta = json.load(f)
    raw = np.fromfile(os.path.join(model_dir, meta['weights']['file']), dtype='<f4')
    weights = {}
    for entry in meta['weights']['tensors']:
        n = int(np.prod(entry['shape']))
        start = entry['offset'] // 4
        weights[entry['name']] = torch.tensor(raw[start:start + n].reshape(entry['shape']))
    return meta['config'], weights, meta


def rss_mib():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20


def tokens_of(seed, count, vocab=256):
    return torch.tensor(np.random.default_rng(seed).integers(0, vocab, size=count), dtype=torch.long)


class Worker:
    def __init__(self, model_dir):
        self.cfg, weights, self.meta = load_weights(model_dir)
        self.weights = weights
        self.model = InfiniFormer(self.cfg, weights)
        self.full = FullAttention(self.cfg)
        self.sweep = None
        self.L = self.cfg['segmentLength']

    def op_info(self, _):
        return {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'python': sys.version.split()[0]}

    def op_check(self, req):
        """Max |peer - library| of the logits on the library's reference tokens: segment mode and token mode."""
        ref = np.fromfile(req['reference'], dtype='<f4').reshape(-1, self.cfg['vocabSize'])
        toks = torch.tensor(req['tokens'], dtype=torch.long)[None, :]
        with torch.inference_mode():
            st = self.model.new_state(1)
            seg = torch.cat([self.model.forward(st, toks[:, s:s + self.L])[0] for s in range(0, toks.shape[1], self.L)], dim=1)[0]
            st = self.model.new_state(1)
            tok = torch.cat([self.model.forward(st, toks[:, i:i + 1])[0] for i in range(toks.shape[1])], dim=1)[0]
        r = torch.tensor(ref)
        return {'segmentMaxDiff': float((seg - r).abs().max()), 'tokenMaxDiff': float((tok - r).abs().max()), 'maxAbs': float(r.abs().max())}

    def op_matmul(self, req):
        n = req['n']
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        ms = []
        for _ in range(req['reps']):
            t0 = time.perf_counter()
            a @ b
            ms.append((time.perf_counter() - t0) * 1000)
        return {'ms': ms}

    def op_segment(self, req):
        streams, segments = req['streams'], req['segments']
        toks = tokens_of(2, self.L * (segments + 2) * streams).view(streams, -1)
        ms = []
        with torch.inference_mode():
            st = self.model.new_state(streams)
            for s in range(segments + 2):
                t0 = time.perf_counter()
                logits, _ = self.model.forward(st, toks[:, s * self.L:(s + 1) * self.L])
                logits.numpy()
                if s >= 2:  # two warm-up segments: the memory is contracted on every timed one
                    ms.append((time.perf_counter() - t0) * 1000)
        return {'ms': ms}

    def op_token(self, req):
        count = req['tokens']
        toks = tokens_of(4, count + 2 * self.L)
        ms = []
        with torch.inference_mode():
            st = self.model.new_state(1)
            for i in range(toks.shape[0]):
                t0 = time.perf_counter()
                logits, _ = self.model.forward(st, toks[i:i + 1][None, :])
                logits.numpy()
                if i >= 2 * self.L:
                    ms.append((time.perf_counter() - t0) * 1000)
        return {'ms': ms}

    def op_train(self, req):
        streams, steps = req['streams'], req['steps']
        params = [p.detach().clone().requires_grad_(True) for p in self.weights.values()]
        model = InfiniFormer(self.cfg, dict(zip(self.weights.keys(), params)))
        opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.0)
        toks = tokens_of(5, (steps + 2) * self.L * streams + 1)
        st = model.new_state(streams)
        ms = []
        for s in range(steps + 1):
            t0 = time.perf_counter()
            chunk = toks[s * streams * self.L:(s + 1) * streams * self.L + 1]
            inputs, targets = chunk[:-1].view(streams, self.L), chunk[1:].view(streams, self.L)
            logits, kl = model.forward(st, inputs, training=True)
            loss = F.cross_entropy(logits.reshape(-1, self.cfg['vocabSize']), targets.reshape(-1)) + self.cfg['klWeight'] * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            loss.item()
            if s >= 1:  # the first step allocates Adam's moments
                ms.append((time.perf_counter() - t0) * 1000)
        return {'ms': ms}

    def op_full(self, req):
        context, reps, new = req['context'], req['reps'], req['new']
        cache = self.full.cache(context, new)
        toks = tokens_of(6, new)[None, :]
        ms = []
        with torch.inference_mode():
            for _ in range(reps + 1):
                t0 = time.perf_counter()
                self.full.forward(cache, context, toks).numpy()
                ms.append((time.perf_counter() - t0) * 1000)
        rss = rss_mib()
        del cache
        return {'ms': ms[1:], 'rssMiB': rss}

    def op_sweepStart(self, _):
        self.sweep = {'state': self.model.new_state(1), 'tokens': 0}
        return {}

    def op_sweepRun(self, req):
        """Advances the sweep's stream to `to` tokens untimed (if short of it), then times `segments` more."""
        sw = self.sweep
        ms = []
        end = max(sw['tokens'], req['to']) + req['segments'] * self.L
        with torch.inference_mode():
            while sw['tokens'] < end:
                toks = tokens_of(sw['tokens'], self.L)[None, :]
                t0 = time.perf_counter()
                self.model.forward(sw['state'], toks)[0].numpy()
                if sw['tokens'] >= req['to']:
                    ms.append((time.perf_counter() - t0) * 1000)
                sw['tokens'] += self.L
        return {'ms': ms, 'rssMiB': rss_mib()}

    def op_sweepEnd(self, _):
        self.sweep = None
        return {}


def main():
    threads = int(os.environ.get('PEERS_TORCH_THREADS', '0'))
    if threads > 0:
        torch.set_num_threads(threads)
    worker = Worker(sys.argv[1])
    print(json.dumps({'ready': True, **worker.op_info(None)}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            out = getattr(worker, 'op_' + req['op'])(req)
            print(json.dumps({'ok': True, **out}), flush=True)
        except Exception as error:  # reported to the driver, which prints it and skips the figure
            import traceback
            traceback.print_exc()
            print(json.dumps({'ok': False, 'error': f'{type(error).__name__}: {error}'}), flush=True)


if __name__ == '__main__':
    main()
