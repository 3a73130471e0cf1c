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
    Napi::ArrayBuffer buffer = b.array.ArrayBuffer();
    const void* data = buffer.IsDetached() ? nullptr : static_cast<const uint8_t*>(buffer.Data()) + b.array.ByteOffset();
    const size_t bytes = buffer.IsDetached() ? 0 : b.array.ByteLength();
    if (data != b.data || bytes != b.bytes) {
      throw typeError(env, b.name,
                      "an array that stays as it is while the call reads its arguments (a getter of a later "
                      "argument detached, transferred or resized it)",
                      buffer.IsDetached() ? "one that was detached" : "one of " + std::to_string(bytes) + " bytes instead of " + std::to_string(b.bytes));
    }
  }
}

void HostInputs::persist() {
  for (const Napi::Object& object : kept_) persistent_.push_back(Napi::Persistent(object));
  kept_.clear();
  borrowed_.clear();  // an asynchronous call never borrows (it copies); nothing to confirm later
}

}  // namespace siglip::addon
