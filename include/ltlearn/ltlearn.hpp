#pragma once
/// \file
/// Umbrella header of ltlearn (CPU): every public header of the library, so one include gives
/// a research program the whole API — tensors, autograd, ops, layers and models, the loss,
/// sampling and mixing policies with their type-erased forms, decoupled classifiers, feature
/// augmentation, metrics, optimisers and schedules, and the trainer with its checkpoints.
/// `#include <ltlearn/cuda.hpp>` adds the CUDA backend.
///
/// Backend kernels (backends/) and private helpers (detail/) are not listed: the ops reach them.
/// The test `umbrella_complete` fails when a header under include/ltlearn is not reachable from
/// here, and `readme_*` compile the README's programs with this include alone.

// core, tensor
#include "ltlearn/core/concepts.hpp"
#include "ltlearn/core/config.hpp"
#include "ltlearn/core/device.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/rng.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/core/shot_groups.hpp"
#include "ltlearn/tensor/allocator.hpp"
#include "ltlearn/tensor/format.hpp"
#include "ltlearn/tensor/storage.hpp"
#include "ltlearn/tensor/tensor.hpp"

// data, sampling
#include "ltlearn/data/batch.hpp"
#include "ltlearn/data/binary_file.hpp"
#include "ltlearn/data/cifar.hpp"
#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/hash.hpp"
#include "ltlearn/data/idx.hpp"
#include "ltlearn/data/image/augment.hpp"
#include "ltlearn/data/image/channel_mean.hpp"
#include "ltlearn/data/image/decode.hpp"
#include "ltlearn/data/image/encode.hpp"
#include "ltlearn/data/image/encoded_dataset.hpp"
#include "ltlearn/data/image/pipeline.hpp"
#include "ltlearn/data/image/readers.hpp"
#include "ltlearn/data/image/resample.hpp"
#include "ltlearn/data/loader.hpp"
#include "ltlearn/data/long_tail.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/sampling/any_sampler.hpp"
#include "ltlearn/sampling/samplers.hpp"

// the kernel set a device provides (backends/contract/kernels.hpp), checked for the CPU device
#include "ltlearn/backends/cpu/kernel_set.hpp"

// autograd, ops
#include "ltlearn/autograd/grad_mode.hpp"
#include "ltlearn/autograd/gradcheck.hpp"
#include "ltlearn/autograd/node.hpp"
#include "ltlearn/autograd/variable.hpp"
#include "ltlearn/ops/activation.hpp"
#include "ltlearn/ops/conv.hpp"
#include "ltlearn/ops/elementwise.hpp"
#include "ltlearn/ops/indexing.hpp"
#include "ltlearn/ops/linalg.hpp"
#include "ltlearn/ops/norm.hpp"
#include "ltlearn/ops/pool.hpp"
#include "ltlearn/ops/reduce.hpp"
#include "ltlearn/ops/shape_ops.hpp"

// nn
#include "ltlearn/nn/activation.hpp"
#include "ltlearn/nn/batchnorm.hpp"
#include "ltlearn/nn/conv.hpp"
#include "ltlearn/nn/conv_bn.hpp"
#include "ltlearn/nn/init.hpp"
#include "ltlearn/nn/linear.hpp"
#include "ltlearn/nn/module.hpp"
#include "ltlearn/nn/pool.hpp"
#include "ltlearn/nn/sequential.hpp"
#include "ltlearn/nn/staged_model.hpp"
#include "ltlearn/nn/models/resnet.hpp"
#include "ltlearn/nn/models/resnet12.hpp"
#include "ltlearn/nn/models/resnet_cifar.hpp"
#include "ltlearn/nn/models/torchvision.hpp"

// long-tail policies: losses, mixing
#include "ltlearn/losses/any_policy.hpp"
#include "ltlearn/losses/fused_loss.hpp"
#include "ltlearn/losses/policies.hpp"
#include "ltlearn/mixing/any_mixing.hpp"
#include "ltlearn/mixing/mixed_loss.hpp"
#include "ltlearn/mixing/policies.hpp"

// decoupled classifiers, feature augmentation, metrics
#include "ltlearn/augment/cam.hpp"
#include "ltlearn/augment/confusion.hpp"
#include "ltlearn/augment/feature_bank.hpp"
#include "ltlearn/augment/finetune.hpp"
#include "ltlearn/augment/fsa.hpp"
#include "ltlearn/augment/fsa_grid.hpp"
#include "ltlearn/augment/head_tail.hpp"
#include "ltlearn/augment/streamed_bank.hpp"
#include "ltlearn/classifier/any_source.hpp"
#include "ltlearn/classifier/decoupled.hpp"
#include "ltlearn/classifier/features.hpp"
#include "ltlearn/classifier/image_features.hpp"
#include "ltlearn/classifier/posthoc.hpp"
#include "ltlearn/metrics/analysis.hpp"
#include "ltlearn/metrics/calibration.hpp"
#include "ltlearn/metrics/class_analysis.hpp"
#include "ltlearn/metrics/classification.hpp"
#include "ltlearn/metrics/report.hpp"
#include "ltlearn/metrics/selection.hpp"

// evaluation: eval-mode scope, batched passes over a dataset, reports, per-class analysis
#include "ltlearn/eval/analysis.hpp"
#include "ltlearn/eval/batched_pass.hpp"
#include "ltlearn/eval/evaluate.hpp"
#include "ltlearn/eval/scope.hpp"

// data parallelism: the communicator concept, its local model and the data-parallel pieces
// (the MPI and NCCL models, dist/mpi.hpp and dist/nccl.hpp, need ltlearn::mpi / ltlearn::nccl)
#include "ltlearn/dist/communicator.hpp"
#include "ltlearn/dist/data_parallel.hpp"
#include "ltlearn/dist/evaluate.hpp"
#include "ltlearn/dist/gradient_reducer.hpp"

// optimisation, training
#include "ltlearn/optim/any_schedule.hpp"
#include "ltlearn/optim/schedule.hpp"
#include "ltlearn/optim/sgd.hpp"
#include "ltlearn/train/checkpoint.hpp"
#include "ltlearn/train/data_parallel.hpp"
#include "ltlearn/train/evaluate.hpp"
#include "ltlearn/train/progress.hpp"
#include "ltlearn/train/safetensors.hpp"
#include "ltlearn/train/trainer.hpp"
