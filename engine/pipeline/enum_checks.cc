#include "engine/pipeline/enum_checks.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"

namespace quantd {
namespace {

using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

absl::Status CheckValue(const EnumDescriptor& type, int value,
                        const std::string& path) {
  if (type.FindValueByNumber(value) != nullptr) return absl::OkStatus();
  std::vector<std::string> allowed;
  for (int i = 0; i < type.value_count(); ++i) {
    allowed.push_back(absl::StrCat(type.value(i)->name(), " (",
                                   type.value(i)->number(), ")"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, " is ", value, ", which is not a value of ",
                   type.name(), "; allowed: ", absl::StrJoin(allowed, ", ")));
}

absl::Status CheckMessage(const Message& message, const std::string& prefix) {
  const Reflection& reflection = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string path = prefix.empty()
                                 ? field->name()
                                 : absl::StrCat(prefix, ".", field->name());
    if (field->is_map()) continue;  // quantd's maps are string -> string
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
          absl::Status s =
              CheckValue(*field->enum_type(),
                         reflection.GetRepeatedEnumValue(message, field, i),
                         absl::StrCat(path, "[", i, "]"));
          if (!s.ok()) return s;
        }
      } else {
        absl::Status s = CheckValue(
            *field->enum_type(), reflection.GetEnumValue(message, field), path);
        if (!s.ok()) return s;
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
          absl::Status s =
              CheckMessage(reflection.GetRepeatedMessage(message, field, i),
                           absl::StrCat(path, "[", i, "]"));
          if (!s.ok()) return s;
        }
      } else {
        absl::Status s =
            CheckMessage(reflection.GetMessage(message, field), path);
        if (!s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckEnumFields(const Message& message) {
  return CheckMessage(message, "");
}

}  // namespace quantd
