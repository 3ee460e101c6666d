"""Stand-alone check of a flowshot .ts, run as ``python -I ts_probe.py FILE`` in a fresh process.

It must not import flowshot (a host never has it): it only needs torch. It loads the file
the way nn~ does, checks what nn~ reads (methods, *_params, attributes, getters/setters),
calls every method once under inference mode, and prints one JSON line. Exit 0 = usable,
2 = refused (the JSON says why).
"""

import json
import sys

PLAY_METHODS = ("sample", "decode")
HOST_METHODS = ("decode_latent", "base_to_latent", "latent_to_base", "embed", "get_info",
                "get_macro_labels", "get_pad_classes")
BUFFERS = ("macro_directions", "macro_std", "base_mean", "pad_latents", "pad_base")
NN_METHODS = ("forward", "encode", "decode", "sample")


def probe(path: str, n: int = 2048) -> dict:
    import torch

    try:
        m = torch.jit.load(path, map_location="cpu")
    except Exception as err:  # any load failure means nn~ would fail (or abort Pd)
        raise ValueError(f"cannot be loaded by torch.jit.load ({str(err).strip().splitlines()[0][:120]})")
    m.eval()
    methods = list(m.get_methods())
    report = {"methods": {}, "attributes": {}}
    for name in NN_METHODS:
        if name not in methods:
            raise ValueError(f"method {name} is not listed by get_methods()")
    for name in HOST_METHODS:
        if not hasattr(m, name):
            raise ValueError(f"host method {name} is missing")
    info = [int(v) for v in m.get_info()]
    if len(info) != 5:
        raise ValueError(f"get_info() returned {info}, expected 5 numbers")
    sr, length, dim, k, p = info
    shapes = {"macro_directions": [k, dim], "macro_std": [k], "base_mean": [dim], "pad_latents": [p, dim], "pad_base": [p, dim]}
    for name, shape in shapes.items():
        t = getattr(m, name, None)
        if not isinstance(t, torch.Tensor) or list(t.shape) != shape:
            raise ValueError(f"buffer {name} should have shape {shape}")
    if len(m.get_macro_labels()) != k or len(m.get_pad_classes()) != p:
        raise ValueError("get_macro_labels()/get_pad_classes() do not match get_info()")
    for name in m.get_attributes():
        params = getattr(m, f"{name}_params", None)
        if not isinstance(params, torch.Tensor) or params.numel() < 1:
            raise ValueError(f"attribute {name} has no {name}_params buffer")
        codes = [int(c) for c in params.tolist()]
        if any(c not in (0, 1, 2, 3) for c in codes):
            raise ValueError(f"attribute {name} has type codes {codes} that nn~ cannot set")
        value = getattr(m, f"get_{name}")()
        if getattr(m, f"set_{name}")(value) != 0:
            raise ValueError(f"set_{name}({value}) refused the attribute's own value")
        report["attributes"][name] = {"types": codes, "value": value}
    with torch.inference_mode():
        for name in methods:
            params = getattr(m, f"{name}_params", None)
            if not isinstance(params, torch.Tensor) or params.numel() != 4:
                raise ValueError(f"method {name} has no 4-entry {name}_params buffer (nn~ says 'method not found')")
            in_ch, in_ratio, out_ch, out_ratio = [int(v) for v in params.tolist()]
            x = torch.zeros(1, in_ch, n // in_ratio)
            if name in PLAY_METHODS:
                x[:, 0, 5:] = 1.0  # a held gate: one hit
            else:
                x[:, 0, 5:400] = torch.sin(torch.arange(395) * 0.3) * torch.exp(-torch.arange(395) / 80.0)
            y = getattr(m, name)(x)
            if list(y.shape) != [1, out_ch, n // out_ratio]:
                raise ValueError(f"method {name} returned shape {list(y.shape)}, nn~ needs {[1, out_ch, n // out_ratio]}")
            if not bool(torch.isfinite(y).all()):
                raise ValueError(f"method {name} returned NaN or inf")
            report["methods"][name] = {"params": [in_ch, in_ratio, out_ch, out_ratio], "peak": float(y.abs().max())}
        # nn~ announces the host rate: a 48 kHz host must work too (then back to the model rate).
        if m.set_sample_rate(48000) != 0:
            raise ValueError("set_sample_rate(48000) was refused")
        x = torch.zeros(1, int(m.sample_params[0]), n)
        x[:, 0, 5:] = 1.0
        y = m.sample(x)
        if list(y.shape) != [1, 1, n] or not bool(torch.isfinite(y).all()) or float(y.abs().max()) == 0.0:
            raise ValueError("sample at a 48 kHz host rate returned no sound")
        m.set_sample_rate(sr)
        z = m.decode_latent(torch.zeros(1, dim))
        if list(z.shape) != [1, 1, length]:
            raise ValueError(f"decode_latent returned shape {list(z.shape)}, expected [1, 1, {length}]")
    report["info"] = info
    report["macro_labels"] = list(m.get_macro_labels())
    report["flowshot_imported"] = any(mod == "flowshot" or mod.startswith("flowshot.") for mod in sys.modules)
    return report


def main() -> int:
    try:
        report = probe(sys.argv[1])
    except ValueError as err:
        print(json.dumps({"ok": False, "error": str(err)}))
        return 2
    except Exception as err:  # e.g. a foreign TorchScript module without nn~'s methods
        first = (str(err).strip().splitlines() or [""])[0][:120]
        print(json.dumps({"ok": False, "error": f"it lacks the nn~ interface ({type(err).__name__}: {first})"}))
        return 2
    report["ok"] = not report["flowshot_imported"]
    if not report["ok"]:
        report["error"] = "loading the file imported flowshot (it must stand alone)"
    print(json.dumps(report))
    return 0 if report["ok"] else 2


if __name__ == "__main__":
    sys.exit(main())
