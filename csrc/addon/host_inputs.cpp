#include "host_inputs.h"

#include <cstdlib>
#include <cstring>

#include "core/errors.h"
#include "js_errors.h"

namespace siglip::addon {
namespace {

// The copies feed the SIMD packers: cache-line aligned, as the packers' own buffers are.
constexpr size_t kCopyAlignment = 64;

}  // namespace

void HostInputs::Free::operator()(void* p) const { std::free(p); }

const void* HostInputs::takeBytes(const Napi::TypedArray& array, const std::string& name) {
  const size_t bytes = array.ByteLength();
  const void* data = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  if (use_ == InputUse::Borrow) {
    borrowed_.push_back(Borrowed{array, name, data, bytes});
    return data;
  }
  const size_t rounded = (bytes + kCopyAlignment - 1) / kCopyAlignment * kCopyAlignment;
  void* copy = std::aligned_alloc(kCopyAlignment, rounded == 0 ? kCopyAlignment : rounded);
  if (copy == nullptr) {
    throw Error(ErrorKind::OutOfMemory, name,
                "Out of memory: could not copy " + name + " (" + std::to_string(bytes) +
                    " bytes) for the asynchronous call");
  }
  copies_.emplace_back(copy);
  if (bytes != 0) std::memcpy(copy, data, bytes);
  return copy;
}

void HostInputs::confirmUnchanged(Napi::Env env) const {
  for (const Borrowed& b : borrowed_) {
    // Asked afresh: node-addon-api's typed array objects cache their length and data pointer.
    napi_typedarray_type type;
    size_t length = 0, offset = 0;
    void* data = nullptr;
    napi_value buffer = nullptr;
    const bool readable = napi_get_typedarray_info(env, b.array, &type, &length, &data, &buffer, &offset) == napi_ok;
    const bool detached = !readable || Napi::ArrayBuffer(env, buffer).IsDetached();
    const size_t bytes = detached ? 0 : length * (b.bytes == 0 ? 0 : b.array.ElementSize());
    if (detached || data != b.data || bytes != b.bytes) {
      throw typeError(env, b.name,
                      "an array that stays as it is while the call reads its arguments (a getter of a later "
                      "argument detached, transferred or resized it)",
                      detached ? std::string("one that was detached")
                               : "one of " + std::to_string(bytes) + " bytes instead of " + std::to_string(b.bytes));
    }
  }
}

void HostInputs::persist() {
  for (const Napi::Object& object : kept_) persistent_.push_back(Napi::Persistent(object));
  kept_.clear();
  borrowed_.clear();  // an asynchronous call never borrows (it copies); nothing to confirm later
}

}  // namespace siglip::addon
