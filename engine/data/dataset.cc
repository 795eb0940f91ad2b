#include "engine/data/dataset.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

std::string What(const std::string& path, const std::string& array) {
  return absl::StrCat("array '", array, "' in '", path, "'");
}

// First non-finite value of a float batch, or -1.
int64_t FirstNonFinite(const Tensor& t) {
  if (t.dtype() != DataType::kFloat32) return -1;
  const float* p = t.data<float>();
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    if (!std::isfinite(p[i])) return i;
  }
  return -1;
}

// Every array must hold one row per sample: the first array seen sets the
// count the others are checked against.
class SampleCount {
 public:
  absl::Status Check(const std::string& path, const std::string& name,
                     int64_t n) {
    if (rows_ < 0) {
      rows_ = n;
      rows_from_ = name;
    } else if (n != rows_) {
      return absl::InvalidArgumentError(absl::StrCat(
          What(path, name), " has ", n, " samples but array '", rows_from_,
          "' has ", rows_, "; every array needs one row per sample"));
    }
    return absl::OkStatus();
  }
  int64_t rows() const { return rows_; }

 private:
  int64_t rows_ = -1;
  std::string rows_from_;
};

// Model input `in` fed from an array with header `h`: same element type and
// rank, same static dims after the sample axis. A language model's token
// rows (`lm`) hold one token more than the input takes.
absl::Status CheckInputArray(const std::string& path, const ValueInfo& in,
                             const NpyHeader& h, bool lm) {
  const std::string what = What(path, in.name);
  if (in.dtype != DataType::kUndefined && h.dtype != in.dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " holds ", h.stored_float64 ? "f64" : DataTypeName(h.dtype),
        " but model input '", in.name, "' expects ", DataTypeName(in.dtype)));
  }
  if (in.has_shape) {
    if (h.shape.size() != in.shape.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model input '", in.name, "' expects ", in.shape.size(), " dims ",
          ShapeToString(in.shape), " (leading = samples); ", what, " has ",
          h.shape.size(), " dims ", ShapeToString(h.shape)));
    }
    for (size_t i = 1; i < h.shape.size(); ++i) {
      const int64_t want = in.shape[i];
      const int64_t have = lm && i == 1 ? h.shape[i] - 1 : h.shape[i];
      if (want >= 0 && want != have) {
        return absl::InvalidArgumentError(absl::StrCat(
            "model input '", in.name, "' expects dim ", i, " to be ", want,
            " (shape ", ShapeToString(in.shape), "); ", what, " has shape ",
            ShapeToString(h.shape),
            lm ? " (rows of the token input hold T+1 tokens)" : ""));
      }
    }
  }
  if (lm && h.shape[1] < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " needs at least 2 tokens per row (T inputs + 1 target)"));
  }
  return absl::OkStatus();
}

// The stream of the array that feeds model input `in`: named like the
// input, or the only array of an .npy for a single-input model. Sets `*lm`
// when it is the language model's `token_input`.
absl::StatusOr<std::unique_ptr<ArrayStream>> OpenInputStream(
    ArrayFile& file, const std::string& path, const Graph& graph,
    const ValueInfo& in, const std::string& token_input, bool* lm) {
  const std::vector<std::string> names = file.names();
  const bool single_npy = names.size() == 1 && names[0].empty();
  std::string array = in.name;
  if (single_npy && graph.inputs.size() == 1) array = "";
  if (!file.Contains(array)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' has no array for model input '", in.name,
                     "'; it has: ", absl::StrJoin(names, ", "),
                     ". Save one array per input, named like the input"));
  }
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<ArrayStream> s,
                          file.OpenStream(array));
  const NpyHeader& h = s->header();
  *lm = !token_input.empty() && in.name == token_input;
  if (*lm && (in.dtype != DataType::kInt64 ||
              (in.has_shape && in.shape.size() != 2) || h.shape.size() != 2)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "language-model token input '", in.name,
        "' must be int64 [N, T] in "
        "the model and [N, T+1] in '",
        path, "' (model ", DataTypeName(in.dtype), ShapeToString(in.shape),
        ", data ", DataTypeName(h.dtype), ShapeToString(h.shape), ")"));
  }
  QUANTD_RETURN_IF_ERROR(CheckInputArray(path, in, h, *lm));
  return s;
}

absl::StatusOr<std::unique_ptr<ArrayStream>> OpenLabelStream(
    ArrayFile& file, const std::string& path) {
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<ArrayStream> s,
                          file.OpenStream(kLabelArray));
  const NpyHeader& h = s->header();
  if (h.shape.size() != 1 ||
      (h.dtype != DataType::kInt64 && h.dtype != DataType::kInt32)) {
    return absl::InvalidArgumentError(
        absl::StrCat(What(path, kLabelArray),
                     " must be a 1-D int64 (or int32) array of "
                     "class ids, one per sample; it is ",
                     DataTypeName(h.dtype), ShapeToString(h.shape)));
  }
  return s;
}

// The batch every run of `graph` must have: the static dim 0 its inputs
// share, or 0 when dim 0 is free.
absl::StatusOr<int64_t> FixedBatch(const Graph& graph) {
  int64_t fixed = 0;
  const ValueInfo* from = nullptr;
  for (const ValueInfo& in : graph.inputs) {
    if (!in.has_shape || in.shape.empty() || in.shape[0] <= 0) continue;
    if (from != nullptr && in.shape[0] != fixed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model inputs '", from->name, "' ", ShapeToString(from->shape),
          " and '", in.name, "' ", ShapeToString(in.shape),
          " fix different batch sizes (dim 0); quantd feeds every input the "
          "same samples per run"));
    }
    fixed = in.shape[0];
    from = &in;
  }
  return fixed;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Dataset>> Dataset::Open(
    const std::string& path, const Graph& graph,
    const DatasetOptions& options) {
  if (options.batch_size < 1 || options.batch_size > 65536) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch size must be in [1, 65536], got ", options.batch_size));
  }
  if (options.first_sample < 0 || options.max_samples < 0) {
    return absl::InvalidArgumentError("sample ranges must not be negative");
  }
  auto d = std::unique_ptr<Dataset>(new Dataset());
  d->path_ = path;
  d->options_ = options;
  QUANTD_ASSIGN_OR_RETURN(d->fixed_batch_, FixedBatch(graph));
  if (d->fixed_batch_ > 0) d->options_.batch_size = d->fixed_batch_;
  QUANTD_ASSIGN_OR_RETURN(d->file_, ArrayFile::Open(path));
  const std::string token_input = options.task == OutputTask::kLanguageModel
                                      ? options.token_input
                                      : std::string();
  if (options.task == OutputTask::kLanguageModel &&
      std::none_of(
          graph.inputs.begin(), graph.inputs.end(),
          [&](const ValueInfo& in) { return in.name == token_input; })) {
    return absl::InvalidArgumentError(
        absl::StrCat("the language model's token input '", token_input,
                     "' is not an input of the model"));
  }
  SampleCount count;
  for (const ValueInfo& in : graph.inputs) {
    bool lm = false;
    QUANTD_ASSIGN_OR_RETURN(
        std::unique_ptr<ArrayStream> s,
        OpenInputStream(*d->file_, path, graph, in, token_input, &lm));
    if (lm) d->language_model_ = true;
    QUANTD_RETURN_IF_ERROR(count.Check(path, in.name, s->rows()));
    d->inputs_.push_back({in.name, std::move(s)});
  }
  if (d->file_->Contains(kLabelArray)) {
    QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<ArrayStream> s,
                            OpenLabelStream(*d->file_, path));
    QUANTD_RETURN_IF_ERROR(count.Check(path, kLabelArray, s->rows()));
    d->label_stream_ = std::move(s);
  }
  const int64_t rows = count.rows();
  if (rows <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' holds no samples"));
  }
  d->begin_ = std::min(options.first_sample, rows);
  d->end_ = options.max_samples > 0
                ? std::min(rows, d->begin_ + options.max_samples)
                : rows;
  if (d->end_ <= d->begin_) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' has ", rows,
                     " samples; none left from sample ", options.first_sample));
  }
  if (d->fixed_batch_ > 1) {
    const int64_t n = d->end_ - d->begin_;
    if (n < d->fixed_batch_) {
      return absl::InvalidArgumentError(
          absl::StrCat("the model runs exactly ", d->fixed_batch_,
                       " samples at a time (its inputs fix dim 0) but '", path,
                       "' gives only ", n, " here; add samples"));
    }
    d->dropped_samples_ = n % d->fixed_batch_;
    d->end_ -= d->dropped_samples_;
  }
  QUANTD_RETURN_IF_ERROR(d->Rewind());
  return d;
}

absl::Status Dataset::SkipTo(int64_t sample) {
  // Streams only move forward; skipped rows are read in bounded chunks.
  while (next_ < sample) {
    const int64_t n = std::min<int64_t>(sample - next_, options_.batch_size);
    for (Input& in : inputs_) {
      if (absl::StatusOr<Tensor> t = in.stream->ReadRows(n); !t.ok()) {
        return t.status();
      }
    }
    if (label_stream_ != nullptr) {
      if (absl::StatusOr<Tensor> t = label_stream_->ReadRows(n); !t.ok()) {
        return t.status();
      }
    }
    next_ += n;
  }
  return absl::OkStatus();
}

absl::Status Dataset::Rewind() {
  for (Input& in : inputs_) {
    QUANTD_RETURN_IF_ERROR(in.stream->Rewind());
  }
  if (label_stream_ != nullptr) {
    QUANTD_RETURN_IF_ERROR(label_stream_->Rewind());
  }
  next_ = 0;
  return SkipTo(begin_);
}

absl::StatusOr<std::optional<DataBatch>> Dataset::Next() {
  if (next_ >= end_) return std::optional<DataBatch>();
  const int64_t n = std::min(options_.batch_size, end_ - next_);
  DataBatch batch;
  batch.size = n;
  batch.first = next_ - begin_;
  for (Input& in : inputs_) {
    QUANTD_ASSIGN_OR_RETURN(Tensor t, in.stream->ReadRows(n));
    if (options_.require_finite) {
      if (int64_t bad = FirstNonFinite(t); bad >= 0) {
        const int64_t per_row = t.num_elements() / std::max<int64_t>(n, 1);
        return absl::InvalidArgumentError(absl::StrCat(
            What(path_, in.name), " contains NaN or Inf at sample ",
            next_ + bad / std::max<int64_t>(per_row, 1),
            "; calibration and evaluation data must be finite"));
      }
    }
    if (language_model_ && in.name == options_.token_input) {
      // Row of T+1 tokens: inputs are tokens [0, T), targets [1, T].
      const int64_t t1 = t.dim(1), tt = t1 - 1;
      Tensor inputs(DataType::kInt64, {n, tt});
      Tensor targets(DataType::kInt64, {n, tt});
      const int64_t* src = t.data<int64_t>();
      for (int64_t r = 0; r < n; ++r) {
        std::copy(src + r * t1, src + r * t1 + tt,
                  inputs.mutable_data<int64_t>() + r * tt);
        std::copy(src + r * t1 + 1, src + (r + 1) * t1,
                  targets.mutable_data<int64_t>() + r * tt);
      }
      batch.feeds[in.name] = std::move(inputs);
      batch.targets = std::move(targets);
    } else {
      batch.feeds[in.name] = std::move(t);
    }
  }
  if (label_stream_ != nullptr) {
    absl::StatusOr<Tensor> labels = label_stream_->ReadRows(n);
    if (!labels.ok()) return labels.status();
    if (labels->dtype() == DataType::kInt32) {
      Tensor wide(DataType::kInt64, {n});
      for (int64_t i = 0; i < n; ++i) {
        wide.mutable_data<int64_t>()[i] = labels->data<int32_t>()[i];
      }
      batch.labels = std::move(wide);
    } else {
      batch.labels = std::move(*labels);
    }
  }
  next_ += n;
  return std::optional<DataBatch>(std::move(batch));
}

}  // namespace quantd
