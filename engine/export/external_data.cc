#include "engine/export/external_data.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

void AddEntry(onnx::TensorProto& t, const std::string& key,
              const std::string& value) {
  onnx::StringStringEntryProto* e = t.add_external_data();
  e->set_key(key);
  e->set_value(value);
}

}  // namespace

absl::Status MoveToExternalData(onnx::ModelProto* model,
                                const std::string& location,
                                const ExternalDataOptions& options,
                                std::string* data) {
  if (location.empty() || location == "." || location == ".." ||
      location.find_first_of(std::string("/\0", 2)) != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("external data location '", location,
                     "' must be a plain file name in the model's folder"));
  }
  if (options.alignment < 1 || options.min_tensor_bytes < 0) {
    return absl::InvalidArgumentError(
        "external data alignment must be >= 1 and the minimum size >= 0");
  }
  auto* initializers = model->mutable_graph()->mutable_initializer();
  std::vector<onnx::TensorProto*> moving;
  for (onnx::TensorProto& t : *initializers) {
    if (t.data_location() == onnx::TensorProto::EXTERNAL) {
      return absl::InvalidArgumentError(absl::StrCat(
          "initializer '", t.name(), "' already has external data"));
    }
    if (t.has_raw_data() &&
        static_cast<int64_t>(t.raw_data().size()) >= options.min_tensor_bytes) {
      moving.push_back(&t);
    }
  }
  const size_t align = static_cast<size_t>(options.alignment);
  auto aligned = [align](size_t n) { return (n + align - 1) / align * align; };
  // One allocation of the final size: growing by doubling would hold up to
  // twice the weights at the end.
  size_t total = data->size();
  for (const onnx::TensorProto* t : moving) {
    total = aligned(total) + t->raw_data().size();
  }
  data->reserve(total);
  for (onnx::TensorProto* t : moving) {
    const size_t offset = aligned(data->size());
    const size_t length = t->raw_data().size();
    data->resize(offset, '\0');
    data->append(t->raw_data());
    // Swapping with an empty string frees the bytes now; clear_raw_data()
    // would keep the capacity, and the model would hold every weight twice.
    std::string().swap(*t->mutable_raw_data());
    t->clear_raw_data();
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    AddEntry(*t, "location", location);
    AddEntry(*t, "offset", absl::StrCat(offset));
    AddEntry(*t, "length", absl::StrCat(length));
  }
  return absl::OkStatus();
}

}  // namespace quantd
