#include "server/kserve_proto_codec.h"

#include <cstring>
#include <limits>

namespace clickrt::server {
namespace {

constexpr int64_t kMaxElements = int64_t{1} << 28;

template <typename T, typename Src>
Status CopyTyped(const Src& src, Tensor* t, const std::string& where, const char* field) {
  if (static_cast<int64_t>(src.size()) != t->size()) {
    return InvalidArgument(where + ": contents." + field + " holds " + std::to_string(src.size()) +
                           " values, shape " + DimsToString(t->dims()) + " needs " +
                           std::to_string(t->size()));
  }
  T* out = t->data<T>();
  for (int i = 0; i < src.size(); ++i) {
    const auto v = src.Get(i);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
        return InvalidArgument(where + ": contents." + field + "[" + std::to_string(i) +
                               "] = " + std::to_string(v) + " does not fit the datatype");
      }
    }
    out[i] = static_cast<T>(v);
  }
  return Status::Ok();
}

// The one typed field that must carry a tensor of `dtype`, and whether any other is set.
Status FillFromContents(const inference::InferTensorContents& c, Tensor* t,
                        const std::string& where) {
  const int set = (c.bool_contents_size() > 0) + (c.int_contents_size() > 0) +
                  (c.int64_contents_size() > 0) + (c.uint_contents_size() > 0) +
                  (c.uint64_contents_size() > 0) + (c.fp32_contents_size() > 0) +
                  (c.fp64_contents_size() > 0) + (c.bytes_contents_size() > 0);
  if (set > 1) return InvalidArgument(where + ": more than one contents field is set");
  switch (t->dtype()) {
    case DType::kFloat32:
      return CopyTyped<float>(c.fp32_contents(), t, where, "fp32_contents");
    case DType::kFloat64:
      return CopyTyped<double>(c.fp64_contents(), t, where, "fp64_contents");
    case DType::kInt64:
      return CopyTyped<int64_t>(c.int64_contents(), t, where, "int64_contents");
    case DType::kInt32:
      return CopyTyped<int32_t>(c.int_contents(), t, where, "int_contents");
    case DType::kInt8:
      return CopyTyped<int8_t>(c.int_contents(), t, where, "int_contents");
    case DType::kUInt8:
      return CopyTyped<uint8_t>(c.uint_contents(), t, where, "uint_contents");
    case DType::kBool:
      return CopyTyped<bool>(c.bool_contents(), t, where, "bool_contents");
    case DType::kFloat16:
    case DType::kBFloat16:
      return InvalidArgument(where + ": FP16 / BF16 tensors must be sent as raw_input_contents");
    case DType::kUndefined:
      break;
  }
  return Internal(where + ": no dtype");
}

void PutTyped(const Tensor& t, inference::InferTensorContents* c) {
  const int64_t n = t.size();
  switch (t.dtype()) {
    case DType::kFloat32:
      c->mutable_fp32_contents()->Add(t.data<float>(), t.data<float>() + n);
      break;
    case DType::kFloat64:
      c->mutable_fp64_contents()->Add(t.data<double>(), t.data<double>() + n);
      break;
    case DType::kInt64:
      for (int64_t i = 0; i < n; ++i) c->add_int64_contents(t.data<int64_t>()[i]);
      break;
    case DType::kInt32:
    case DType::kInt8:
      for (int64_t i = 0; i < n; ++i) c->add_int_contents(static_cast<int32_t>(t.GetAsInt64(i)));
      break;
    case DType::kUInt8:
      for (int64_t i = 0; i < n; ++i) c->add_uint_contents(static_cast<uint32_t>(t.GetAsInt64(i)));
      break;
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) c->add_bool_contents(t.data<bool>()[i]);
      break;
    case DType::kFloat16:
    case DType::kBFloat16:
      for (int64_t i = 0; i < n; ++i) c->add_fp32_contents(static_cast<float>(t.GetAsDouble(i)));
      break;
    case DType::kUndefined:
      break;
  }
}

}  // namespace

StatusOr<InferRequest> DecodeInferProto(const inference::ModelInferRequest& req) {
  InferRequest r;
  r.id = req.id();
  if (req.inputs_size() == 0) return InvalidArgument("the request has no inputs");
  const bool raw = req.raw_input_contents_size() > 0;
  if (raw && req.raw_input_contents_size() != req.inputs_size()) {
    return InvalidArgument("raw_input_contents has " +
                           std::to_string(req.raw_input_contents_size()) + " entries for " +
                           std::to_string(req.inputs_size()) + " inputs");
  }
  r.raw = raw;
  for (int i = 0; i < req.inputs_size(); ++i) {
    const auto& in = req.inputs(i);
    const std::string where = "inputs[" + std::to_string(i) + "] '" + in.name().substr(0, 64) + "'";
    auto dtype = DTypeFromKServe(in.datatype());
    if (!dtype.ok()) return dtype.status().WithContext(where);
    std::vector<int64_t> shape(in.shape().begin(), in.shape().end());
    ASSIGN_OR_RETURN(int64_t count, CheckedElementCount(shape, kMaxElements, where + " shape"));
    if (raw) {
      if (in.has_contents()) {
        return InvalidArgument(where + ": carries contents while raw_input_contents is used");
      }
      const std::string& bytes = req.raw_input_contents(i);
      const uint64_t need = static_cast<uint64_t>(count) * DTypeSize(*dtype);
      if (bytes.size() != need) {
        return InvalidArgument(where + ": raw_input_contents[" + std::to_string(i) + "] has " +
                               std::to_string(bytes.size()) + " bytes, shape " +
                               DimsToString(shape) + " of " + in.datatype() + " needs " +
                               std::to_string(need));
      }
      ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(*dtype, shape));
      if (need > 0) std::memcpy(t.raw(), bytes.data(), need);
      if (*dtype == DType::kBool) {
        // A bool byte other than 0 / 1 is undefined behaviour once read as bool.
        for (int64_t k = 0; k < count; ++k) {
          if (static_cast<uint8_t>(bytes[k]) > 1) {
            return InvalidArgument(where + ": BOOL byte " + std::to_string(k) + " is not 0 or 1");
          }
        }
      }
      if (!r.inputs.emplace(in.name(), std::move(t)).second) {
        return InvalidArgument(where + ": input given twice");
      }
      continue;
    }
    ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(*dtype, shape));
    if (count > 0 && !in.has_contents()) return InvalidArgument(where + ": has no contents");
    RETURN_IF_ERROR(FillFromContents(in.contents(), &t, where));
    if (!r.inputs.emplace(in.name(), std::move(t)).second) {
      return InvalidArgument(where + ": input given twice");
    }
  }
  for (const auto& o : req.outputs()) r.outputs.push_back(o.name());
  return r;
}

Status EncodeInferProto(const std::string& model, const std::string& version,
                        const InferRequest& request, const reference::TensorMap& outputs,
                        inference::ModelInferResponse* resp) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, SelectOutputs(request.outputs, outputs));
  resp->set_model_name(model);
  resp->set_model_version(version);
  resp->set_id(request.id);
  for (const std::string& n : names) {
    const Tensor& t = outputs.at(n);
    auto* o = resp->add_outputs();
    o->set_name(n);
    o->set_datatype(KServeDatatype(t.dtype()));
    for (int64_t d : t.dims()) o->add_shape(d);
    if (request.raw) {
      resp->add_raw_output_contents(static_cast<const char*>(t.raw()), t.nbytes());
    } else {
      PutTyped(t, o->mutable_contents());
    }
  }
  return Status::Ok();
}

}  // namespace clickrt::server
