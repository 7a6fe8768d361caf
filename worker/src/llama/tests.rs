//! Tests of the decoder on tiny random models written as GGUF in memory.

use super::*;
use crate::gguf::writer::write;
use crate::gguf::{TensorType, Value};

/// A 2-layer model with random weights and the real GGUF tensor names; rows are whole
/// quantization blocks, as in real files.
fn tiny_gguf() -> Gguf {
    let (vocab, d, kv, ffn) = (16usize, 32usize, 16usize, 64usize);
    let mut seed = 12345u64;
    let mut rand = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.8
            })
            .collect()
    };
    let mut tensors: Vec<(String, Vec<usize>, TensorType, Vec<f32>)> =
        vec![("token_embd.weight".into(), vec![vocab, d], TensorType::F32, rand(vocab * d))];
    for l in 0..2 {
        let p = |s: &str| format!("blk.{l}.{s}.weight");
        tensors.push((p("attn_norm"), vec![d], TensorType::F32, vec![1.0; d]));
        tensors.push((p("attn_q"), vec![d, d], TensorType::Q8_0, rand(d * d)));
        tensors.push((p("attn_k"), vec![kv, d], TensorType::F16, rand(kv * d)));
        tensors.push((p("attn_v"), vec![kv, d], TensorType::F32, rand(kv * d)));
        tensors.push((p("attn_output"), vec![d, d], TensorType::F32, rand(d * d)));
        tensors.push((p("ffn_norm"), vec![d], TensorType::F32, vec![1.0; d]));
        tensors.push((p("ffn_gate"), vec![ffn, d], TensorType::Q4_1, rand(ffn * d)));
        tensors.push((p("ffn_up"), vec![ffn, d], TensorType::F32, rand(ffn * d)));
        tensors.push((p("ffn_down"), vec![d, ffn], TensorType::F32, rand(d * ffn)));
    }
    tensors.push(("output_norm.weight".into(), vec![d], TensorType::F32, vec![1.0; d]));
    let refs: Vec<(&str, Vec<usize>, TensorType, Vec<f32>)> =
        tensors.iter().map(|(n, s, k, v)| (n.as_str(), s.clone(), *k, v.clone())).collect();
    let bytes = write(
        &[
            ("general.architecture", Value::String("llama".into())),
            ("llama.block_count", Value::U32(2)),
            ("llama.embedding_length", Value::U32(d as u32)),
            ("llama.attention.head_count", Value::U32(2)),
            ("llama.attention.head_count_kv", Value::U32(1)),
            ("llama.feed_forward_length", Value::U32(ffn as u32)),
            ("llama.context_length", Value::U32(32)),
            ("llama.rope.freq_base", Value::F32(10000.0)),
            ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ],
        &refs,
    );
    Gguf::parse(bytes).expect("gguf")
}

#[test]
fn f16_weights_stay_close_to_f32() {
    let g = tiny_gguf();
    let full = Llama::from_gguf(&g, &Compute::Host).expect("model");
    let half = Llama::from_gguf_with(&g, &Compute::Host, true).expect("model");
    let tokens = [1u32, 2, 3];
    let a = full.forward(&tokens, &mut full.new_cache());
    let b = half.forward(&tokens, &mut half.new_cache());
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(diff > 0.0 && diff < 2e-2, "f16 weights moved logits by {diff}");
}

#[test]
fn the_host_engine_equals_burn() {
    // A prompt, single-token steps, then several tokens again, on both engines; and with f16
    // weights (f32 matrices become f16 on both sides).
    let g = tiny_gguf();
    for f16 in [false, true] {
        let load = |burn_only: bool| {
            let c = LlamaConfig::from_gguf(&g).expect("config");
            let compute = if burn_only {
                Compute::Burn(burn::prelude::Device::flex())
            } else {
                Compute::Host
            };
            Llama::load_with(c, &g, &compute, f16).expect("model")
        };
        let (host, burn) = (load(false), load(true));
        assert!(matches!(host.engine, Engine::Host(_)) && matches!(burn.engine, Engine::Burn(_)));
        let (mut hc, mut bc) = (host.new_cache(), burn.new_cache());
        let mut a = host.forward(&[3, 9, 1], &mut hc);
        let mut b = burn.forward(&[3, 9, 1], &mut bc);
        for next in [4u32, 15, 0, 7] {
            let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            let tolerance = if f16 { 2e-2 } else { 1e-3 };
            assert!(
                diff < tolerance,
                "f16 {f16}: host and burn differ by {diff} at position {}",
                hc.len()
            );
            a = host.forward(&[next], &mut hc);
            b = burn.forward(&[next], &mut bc);
        }
        // Several tokens after single steps.
        let a = host.forward(&[2, 5], &mut hc);
        let b = burn.forward(&[2, 5], &mut bc);
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < if f16 { 2e-2 } else { 1e-3 }, "after host steps: {diff}");
        assert_eq!((hc.len(), bc.len()), (9, 9));
    }
}

#[test]
fn burn_receives_f16_matrices_at_load() {
    // Loading in f16 on burn's CPU backend (where every matrix is decoded on the host) gives half
    // the bytes of matrices, and logits close to f32's.
    let g = tiny_gguf();
    let flex = || Compute::Burn(burn::prelude::Device::flex());
    let f32_model = Llama::from_gguf(&g, &flex()).expect("model");
    let direct = Llama::from_gguf_with(&g, &flex(), true).expect("model");
    assert_eq!(direct.weight_bytes() * 2, f32_model.weight_bytes());
    let tokens = [3u32, 9, 1, 4];
    let a = f32_model.forward(&tokens, &mut f32_model.new_cache());
    let b = direct.forward(&tokens, &mut direct.new_cache());
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(diff > 0.0 && diff < 2e-2, "f16 matrices moved logits by {diff}");
}

#[test]
fn reads_the_shape_from_metadata() {
    let c = LlamaConfig::from_gguf(&tiny_gguf()).expect("config");
    assert_eq!(
        (c.layers, c.dim, c.heads, c.kv_heads, c.ffn_dim, c.vocab, c.context),
        (2, 32, 2, 1, 64, 16, 32)
    );
    assert_eq!((c.head_dim, c.arch), (16, Architecture::Llama));
}

#[test]
fn incremental_decoding_matches_a_full_pass() {
    let g = tiny_gguf();
    let model = Llama::from_gguf(&g, &Compute::Host).expect("model");
    let tokens = [3u32, 7, 1, 12, 5];
    let full = model.forward(&tokens, &mut model.new_cache());
    assert_eq!(full.len(), 16);
    let mut cache = model.new_cache();
    model.forward(&tokens[..2], &mut cache);
    model.forward(&tokens[2..4], &mut cache);
    let step = model.forward(&tokens[4..], &mut cache);
    assert_eq!(cache.len(), 5);
    let diff = full.iter().zip(&step).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-4, "KV cache changes the result by {diff}");
    // The position matters (rotary embeddings): the same token elsewhere gives other logits.
    let shifted = model.forward(&[5], &mut model.new_cache());
    assert!(shifted.iter().zip(&step).any(|(a, b)| (a - b).abs() > 1e-4));
}

#[test]
fn a_safetensors_checkpoint_gives_the_same_logits_as_gguf() {
    use safetensors::tensor::TensorView;
    let g = tiny_gguf();
    let dir = std::env::temp_dir().join(format!("hf-tiny-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = vec![];
    for t in &g.tensors {
        let (mut data, shape) = g.dequantize(&t.name).expect("tensor");
        let hf = match t.name.as_str() {
            "token_embd.weight" => "model.embed_tokens.weight".to_string(),
            "output_norm.weight" => "model.norm.weight".to_string(),
            n => {
                let (layer, part) = n.trim_start_matches("blk.").split_once('.').expect("layer");
                let part = match part {
                    "attn_norm.weight" => "input_layernorm.weight",
                    "attn_q.weight" => {
                        data = crate::hf::interleaved_to_rotate_half(&data, 2, shape[1]);
                        "self_attn.q_proj.weight"
                    }
                    "attn_k.weight" => {
                        data = crate::hf::interleaved_to_rotate_half(&data, 1, shape[1]);
                        "self_attn.k_proj.weight"
                    }
                    "attn_v.weight" => "self_attn.v_proj.weight",
                    "attn_output.weight" => "self_attn.o_proj.weight",
                    "ffn_norm.weight" => "post_attention_layernorm.weight",
                    "ffn_gate.weight" => "mlp.gate_proj.weight",
                    "ffn_up.weight" => "mlp.up_proj.weight",
                    "ffn_down.weight" => "mlp.down_proj.weight",
                    other => panic!("unexpected tensor {other}"),
                };
                format!("model.layers.{layer}.{part}")
            }
        };
        named.push((hf, shape, data.iter().flat_map(|x| x.to_le_bytes()).collect()));
    }
    let views: Vec<(String, TensorView<'_>)> = named
        .iter()
        .map(|(n, s, b)| (n.clone(), TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("view")))
        .collect();
    let bytes = safetensors::serialize(views, None).expect("serialize");
    std::fs::write(dir.join("model.safetensors"), bytes).expect("write");
    std::fs::write(
        dir.join("config.json"),
        r#"{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
            "intermediate_size": 64, "vocab_size": 16, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "max_position_embeddings": 32, "tie_word_embeddings": true}"#,
    )
    .expect("write");
    let hf = crate::hf::HfWeights::open(&dir).expect("open");
    let from_hf = Llama::load(hf.config.llama(), &hf, &Compute::Host).expect("hf model");
    let from_gguf = Llama::from_gguf(&g, &Compute::Host).expect("gguf model");
    let shape = |c: &LlamaConfig| (c.layers, c.dim, c.heads, c.kv_heads, c.ffn_dim, c.vocab, c.context);
    assert_eq!(shape(&from_hf.config), shape(&from_gguf.config));
    let tokens = [2u32, 9, 4, 4, 11];
    let a = from_gguf.forward(&tokens, &mut from_gguf.new_cache());
    let b = from_hf.forward(&tokens, &mut from_hf.new_cache());
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    // The GGUF's Q8_0 q projection stays in its encoding (on AVX-512 its kernel rounds the
    // activations to 16 bits); the safetensors copy is all f32.
    assert!(diff < 1e-3, "safetensors and GGUF disagree by {diff}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

fn flex() -> Compute {
    Compute::Burn(burn::prelude::Device::flex())
}

#[test]
fn a_burn_batch_equals_each_sequence_alone() {
    // Three sequences at different positions, of 1, 3 and 2 new tokens, in one step; then a step
    // where one of them has no tokens.
    let g = tiny_gguf();
    let model = Llama::from_gguf(&g, &flex()).expect("model");
    let prompts: [&[u32]; 3] = [&[1, 2, 3, 4], &[5], &[9, 8, 7]];
    let steps: [&[u32]; 3] = [&[6], &[11, 12, 13], &[0, 15]];
    let mut alone = vec![];
    let mut caches: Vec<KvCache> = vec![];
    for (p, s) in prompts.iter().zip(&steps) {
        let mut cache = model.new_cache_with_capacity(8);
        model.forward(p, &mut cache);
        alone.push(model.forward(s, &mut cache));
        let mut batched = model.new_cache_with_capacity(8);
        model.forward(p, &mut batched);
        caches.push(batched);
    }
    let mut batch: Vec<SequenceStep<'_>> = steps
        .iter()
        .zip(caches.iter_mut())
        .map(|(tokens, cache)| SequenceStep { tokens, cache })
        .collect();
    let passes = model.weight_passes();
    let together = model.forward_batch(&mut batch);
    assert_eq!(model.weight_passes(), passes + 1, "one pass over the weights for the batch");
    for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
        let diff = max_diff(a, b);
        assert!(diff < 1e-4, "sequence {i}: batched logits differ by {diff}");
    }
    assert_eq!(caches.iter().map(KvCache::len).collect::<Vec<_>>(), [5, 4, 5]);
    // A sequence without tokens gets no logits and keeps its cache.
    let mut batch: Vec<SequenceStep<'_>> = caches
        .iter_mut()
        .zip([&[3u32][..], &[], &[4]])
        .map(|(cache, tokens)| SequenceStep { tokens, cache })
        .collect();
    let out = model.forward_batch(&mut batch);
    assert_eq!((out[0].len(), out[1].len(), out[2].len()), (16, 0, 16));
    assert_eq!(caches.iter().map(KvCache::len).collect::<Vec<_>>(), [6, 4, 6]);
}

#[test]
fn a_device_cache_is_preallocated_and_grows_when_too_small() {
    let g = tiny_gguf();
    let model = Llama::from_gguf(&g, &flex()).expect("model");
    let mut roomy = model.new_cache();
    assert_eq!(roomy.device_capacity(), Some(32), "the model's context");
    let mut small = model.new_cache_with_capacity(3);
    assert_eq!(small.device_capacity(), Some(3));
    // 2 layers × 3 positions × 1 kv head × (16 + 16) × 4 bytes.
    assert_eq!(model.device_cache_bytes(3), 2 * 3 * 32 * 4);
    for tokens in [&[3u32, 9][..], &[1], &[4, 15]] {
        let a = model.forward(tokens, &mut roomy);
        let b = model.forward(tokens, &mut small);
        assert!(max_diff(&a, &b) < 1e-5);
    }
    assert_eq!(small.device_capacity(), Some(6), "doubled once");
    assert_eq!((small.len(), roomy.device_capacity()), (5, Some(32)));
    assert_eq!(
        Llama::from_gguf(&g, &Compute::Host).expect("model").new_cache().device_capacity(),
        None
    );
}

#[test]
fn layers_split_between_a_device_and_the_host_equal_the_host() {
    let g = tiny_gguf();
    let c = || LlamaConfig::from_gguf(&g).expect("config");
    let host = Llama::load(c(), &g, &Compute::Host).expect("model");
    let split = Llama::load_with_gpu_layers(c(), &g, &flex(), false, Some(1)).expect("model");
    assert!(matches!(split.engine, Engine::Split(..)));
    // The device holds the embedding and one layer; the host the other layer and the head.
    let device_only = Llama::load(c(), &g, &flex()).expect("model");
    assert!(split.uploaded_bytes().expect("on a device").total() < device_only.uploaded_bytes().expect("device").total());
    let (mut hc, mut sc) = (host.new_cache(), split.new_cache());
    for tokens in [&[3u32, 9, 1][..], &[4], &[15, 0]] {
        let a = host.forward(tokens, &mut hc);
        let b = split.forward(tokens, &mut sc);
        let diff = max_diff(&a, &b);
        assert!(diff < 1e-3, "split and host differ by {diff}");
    }
    assert_eq!(sc.len(), 6);
    // A batch on the split model: each sequence as alone.
    let (mut a, mut b) = (split.new_cache(), split.new_cache());
    split.forward(&[7, 7, 2], &mut a);
    let steps: [&[u32]; 2] = [&[5], &[1, 12]];
    let mut batch = vec![
        SequenceStep {
            tokens: steps[0],
            cache: &mut a,
        },
        SequenceStep {
            tokens: steps[1],
            cache: &mut b,
        },
    ];
    let together = split.forward_batch(&mut batch);
    let (mut a_alone, mut b_alone) = (split.new_cache(), split.new_cache());
    split.forward(&[7, 7, 2], &mut a_alone);
    assert!(max_diff(&together[0], &split.forward(steps[0], &mut a_alone)) < 1e-4);
    assert!(max_diff(&together[1], &split.forward(steps[1], &mut b_alone)) < 1e-4);
    assert_eq!((a.len(), b.len()), (4, 2));
    // No layer, or all of them, on the device.
    let none = Llama::load_with_gpu_layers(c(), &g, &flex(), false, Some(0)).expect("model");
    assert!(matches!(none.engine, Engine::Host(_)));
    let all = Llama::load_with_gpu_layers(c(), &g, &flex(), false, Some(2)).expect("model");
    assert!(matches!(all.engine, Engine::Burn(_)));
}

#[test]
fn an_f16_model_uploads_no_f32_matrix() {
    // Only norms go to the device in f32; every matrix (embedding included) arrives in f16.
    let g = tiny_gguf();
    let c = LlamaConfig::from_gguf(&g).expect("config");
    let model = Llama::from_gguf_with(&g, &flex(), true).expect("model");
    let up = model.uploaded_bytes().expect("on a device");
    let (d, layers) = (c.dim, c.layers);
    let matrix_elements = c.vocab * d + layers * (d * c.q_dim() + 2 * d * c.k_dim() + d * d + 3 * d * c.ffn_dim);
    assert_eq!(up.f16, 2 * matrix_elements);
    let norms = (2 * layers + 1) * d;
    assert_eq!((up.f32, up.other), (4 * norms, 0));
    // The f32 model sends the same matrices in f32.
    let full = Llama::from_gguf(&g, &flex()).expect("model").uploaded_bytes().expect("device");
    assert_eq!((full.f32, full.f16), (4 * (matrix_elements + norms), 0));
}

#[test]
fn a_batch_gives_each_sequence_what_it_gets_alone() {
    // Three sequences in one batch over three steps: two prompts of different lengths start
    // together, one of them leaves, a third joins with its prompt while the first decodes.
    let g = tiny_gguf();
    let model = Llama::from_gguf(&g, &Compute::Host).expect("model");
    let steps: [&[&[u32]]; 3] = [
        &[&[1, 2, 3, 4, 5], &[7, 8, 9], &[]],
        &[&[6], &[10, 11], &[3, 1, 4, 1]],
        &[&[2], &[], &[5]],
    ];
    let mut caches: Vec<KvCache> = (0..3).map(|_| model.new_cache()).collect();
    let mut alone: Vec<KvCache> = (0..3).map(|_| model.new_cache()).collect();
    for step in steps {
        let mut batch: Vec<SequenceStep<'_>> = caches
            .iter_mut()
            .zip(step)
            .map(|(cache, tokens)| SequenceStep { tokens, cache })
            .collect();
        let passes = model.weight_passes();
        let batched = model.forward_batch(&mut batch);
        assert_eq!(model.weight_passes(), passes + 1, "one pass over the weights for the batch");
        for (i, tokens) in step.iter().enumerate() {
            let expected = model.forward(tokens, &mut alone[i]);
            assert_eq!(batched[i], expected, "sequence {i} in the batch");
            assert_eq!(caches[i].len(), alone[i].len());
        }
    }
    assert_eq!(caches.iter().map(KvCache::len).collect::<Vec<_>>(), [7, 5, 5]);
}

#[test]
fn a_long_prompt_in_blocks_of_queries_gives_the_same_logits() {
    let g = tiny_gguf();
    let whole = Llama::from_gguf(&g, &flex()).expect("model");
    let mut blocked = Llama::from_gguf(&g, &flex()).expect("model");
    // 2 heads × 12 positions × 4 bytes per query row: blocks of 3 queries.
    blocked.engine = match blocked.engine {
        Engine::Burn(b) => Engine::Burn(Box::new(b.with_score_budget(3 * 2 * 12 * 4))),
        other => other,
    };
    let prompt: Vec<u32> = (0..12).map(|i| (i * 5 % 16) as u32).collect();
    let (mut a, mut b) = (whole.new_cache(), blocked.new_cache());
    for tokens in [&prompt[..], &[3], &[7, 1]] {
        let diff = max_diff(&whole.forward(tokens, &mut a), &blocked.forward(tokens, &mut b));
        assert!(diff < 1e-5, "blocks of queries change the logits by {diff}");
    }
}
