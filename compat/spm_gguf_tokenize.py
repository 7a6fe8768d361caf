"""Reference SentencePiece tokenization of a GGUF `llama` (SentencePiece) vocabulary.

Rebuilds the SentencePiece model the GGUF was converted from (a BPE model with byte fallback,
identity normalization, no dummy prefix unless `tokenizer.ggml.add_space_prefix` says so) and
encodes with the `sentencepiece` package itself. Control tokens written in the text are cut out
first (leftmost, longest first), like Hugging Face and llama.cpp do with special tokens;
user-defined tokens are left to SentencePiece, which matches them itself.

    python compat/spm_gguf_tokenize.py MODEL.gguf < strings.json > ids.json

stdin: a JSON list of strings; stdout: a JSON list of id lists (no BOS).
Needs: gguf, sentencepiece, protobuf.
"""

import json
import re
import sys

from gguf import GGUFReader
from sentencepiece import SentencePieceProcessor
from sentencepiece import sentencepiece_model_pb2 as spm_pb2

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def build(path):
    reader = GGUFReader(path)
    tokens = field(reader, "tokenizer.ggml.tokens")
    scores = field(reader, "tokenizer.ggml.scores")
    types = field(reader, "tokenizer.ggml.token_type")
    unk = field(reader, "tokenizer.ggml.unknown_token_id", 0)
    model = spm_pb2.ModelProto()
    model.trainer_spec.model_type = spm_pb2.TrainerSpec.BPE
    model.trainer_spec.byte_fallback = True
    model.trainer_spec.unk_id = unk
    model.trainer_spec.bos_id = field(reader, "tokenizer.ggml.bos_token_id", -1)
    model.trainer_spec.eos_id = field(reader, "tokenizer.ggml.eos_token_id", -1)
    model.trainer_spec.pad_id = field(reader, "tokenizer.ggml.padding_token_id", -1)
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = bool(field(reader, "tokenizer.ggml.add_space_prefix", True))
    model.normalizer_spec.remove_extra_whitespaces = False
    model.normalizer_spec.escape_whitespaces = True
    kinds = {
        NORMAL: spm_pb2.ModelProto.SentencePiece.NORMAL,
        UNKNOWN: spm_pb2.ModelProto.SentencePiece.UNKNOWN,
        CONTROL: spm_pb2.ModelProto.SentencePiece.CONTROL,
        USER_DEFINED: spm_pb2.ModelProto.SentencePiece.USER_DEFINED,
        UNUSED: spm_pb2.ModelProto.SentencePiece.UNUSED,
        BYTE: spm_pb2.ModelProto.SentencePiece.BYTE,
    }
    controls = []
    for i, (text, score, kind) in enumerate(zip(tokens, scores, types)):
        piece = model.pieces.add()
        # The converter wrote whitespace-only user-defined pieces with plain spaces; the
        # SentencePiece model matches them in the escaped text.
        piece.piece = text.replace(" ", "\u2581") if kind == USER_DEFINED else text
        piece.score = score
        piece.type = kinds[UNKNOWN] if i == unk else kinds.get(kind, kinds[NORMAL])
        if kind in (CONTROL, UNKNOWN) or i == unk:
            controls.append((text, i))
    sp = SentencePieceProcessor(model_proto=model.SerializeToString())
    controls.sort(key=lambda c: -len(c[0]))
    splitter = re.compile("|".join(re.escape(t) for t, _ in controls)) if controls else None
    ids = dict(controls)
    return sp, splitter, ids


def encode(sp, splitter, ids, text):
    out, start = [], 0
    for m in splitter.finditer(text) if splitter else []:
        if m.start() > start:
            out += sp.encode(text[start : m.start()])
        out.append(ids[m.group(0)])
        start = m.end()
    if start < len(text):
        out += sp.encode(text[start:])
    return out


def main():
    sp, splitter, ids = build(sys.argv[1])
    texts = json.load(sys.stdin)
    json.dump([encode(sp, splitter, ids, t) for t in texts], sys.stdout)


if __name__ == "__main__":
    main()
