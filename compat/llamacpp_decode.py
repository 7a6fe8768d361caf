"""llama.cpp's prefill and decode speed on a GGUF, measured like `cargo bench --bench decode`.

The same chat prompt ("Write a short story about a cat.", in the model's chat format), 128 greedy tokens, a fresh context
per run, median of 3 runs after an 8-token warm-up. Prints one JSON line.

    python compat/llamacpp_decode.py MODEL.gguf THREADS

Needs llama-cpp-python (BENCHMARKS.md says how it was built).
"""

import json
import resource
import sys
import time

import llama_cpp
from llama_cpp import Llama

# The same request in each model's chat format (as `cargo bench --bench decode` builds it).
PROMPTS = {
    "gemma3": "<start_of_turn>user\nWrite a short story about a cat.<end_of_turn>\n<start_of_turn>model\n",
}
CHATML = "<|im_start|>user\nWrite a short story about a cat.<|im_end|>\n<|im_start|>assistant\n"


def main() -> None:
    path, threads = sys.argv[1], int(sys.argv[2])
    llm = Llama(model_path=path, n_ctx=512, n_threads=threads, n_threads_batch=threads, n_gpu_layers=0, verbose=False)
    arch = llm.metadata.get("general.architecture", "llama")
    prompt = PROMPTS.get(arch, CHATML)
    # BOS as the file asks (SmolLM2's asks for none: its first id is <|im_start|>; Gemma's does).
    add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
    tokens = llm.tokenize(prompt.encode(), add_bos=add_bos, special=True)

    def run(n: int):
        # A fresh context: otherwise llama-cpp-python reuses the cached prompt prefix.
        llm.reset()
        out, first = [], None
        start = time.perf_counter()
        for tok in llm.generate(tokens, temp=0.0, reset=True):
            if first is None:
                first = time.perf_counter()
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
                break
            out.append(tok)
            if len(out) >= n:
                break
        end = time.perf_counter()
        return len(tokens) / (first - start), (len(out) - 1) / (end - first), out

    run(8)
    runs = [run(128) for _ in range(3)]
    median = lambda xs: sorted(xs)[len(xs) // 2]
    text = llm.detokenize(runs[0][2]).decode(errors="replace")
    print(json.dumps({
        "threads": threads,
        "prompt_tokens": len(tokens),
        "prefill_tok_s": round(median([r[0] for r in runs]), 1),
        "decode_tok_s": round(median([r[1] for r in runs]), 1),
        "output": text[:120],
        # Of the whole Python process (the interpreter and numpy included).
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1),
    }))


if __name__ == "__main__":
    main()
