// Readable answers: a model's outputs as JSON or CSV text, named after the
// manifest's outputs, with label names and top-k scores for a classifier.

#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <torchport/torchport.h>

namespace torchport {

/// The text formats format_answers writes.
std::vector<std::string> answer_formats();

/// `outputs` (in manifest output order, dim 0 the batch) as "json" or "csv" text, one
/// record per sample. Each output appears under its manifest name, its values
/// flattened per sample. When the manifest has `labels`, a float output of shape
/// [B, K] with K labels also gives the `top_k` label names and scores of each sample
/// (highest first; ties keep label order), and an integer output of shape [B] gives
/// the label name of each index (under "label" and "top"). Throws Error(BadOption) for an unknown format, a
/// top_k below 1, or outputs without a shared batch dimension.
std::string format_answers(const std::vector<at::Tensor>& outputs, const Manifest& manifest,
                           const std::string& format, int top_k = 3);

}  // namespace torchport
