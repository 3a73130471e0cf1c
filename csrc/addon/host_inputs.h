// The JavaScript memory one addon call reads, and how the computation sees it.
//
// A typed array is not ours: JavaScript can mutate it, shrink its resizable ArrayBuffer,
// transfer or detach it, or let the garbage collector free it once the call has returned.
// So every reader hands the typed arrays it takes data from to a HostInputs, and:
// - a call that runs off the JS thread (every Promise call) copies them here, into memory
//   the call owns (InputUse::Copy). Nothing the caller does to its arrays while the Promise
//   is pending reaches the computation; the result is that of the values at the call. The
//   copy is O((N + M)·D) against the call's O(N·M·D) work (bench/NOTES.md has the cost).
// - a call that runs on the JS thread reads the arrays in place (InputUse::Borrow): no
//   JavaScript runs while it computes, but getters of the arguments (an options object's
//   `logitScale`, a matrix's `cols`) run while they are read and may resize or detach an
//   array read before them. confirmUnchanged(), after the last getter, checks that every
//   borrowed array still has the memory it had when it was read.
// DeviceMatrix handles are not copied; keepAlive() holds them until the call ends.
// Everything here runs on the JS thread.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace siglip::addon {

enum class InputUse { Borrow, Copy };

class HostInputs {
 public:
  explicit HostInputs(InputUse use) : use_(use) {}
  HostInputs(HostInputs&&) = default;
  HostInputs& operator=(HostInputs&&) = default;

  InputUse use() const { return use_; }

  // The memory the call reads for `array` (already checked by the reader: type, length, not
  // detached): a copy owned here, or the array's own bytes. `name` is the argument's name
  // ("image.data") for the error confirmUnchanged() may raise.
  const float* take(const Napi::Float32Array& array, const std::string& name) {
    return static_cast<const float*>(takeBytes(array, name));
  }
  const int32_t* take(const Napi::Int32Array& array, const std::string& name) {
    return static_cast<const int32_t*>(takeBytes(array, name));
  }
  const uint16_t* take(const Napi::Uint16Array& array, const std::string& name) {  // bfloat16 bits
    return static_cast<const uint16_t*>(takeBytes(array, name));
  }

  // An object (a DeviceMatrix handle) the call needs alive until it ends.
  void keepAlive(Napi::Object object) { kept_.push_back(object); }

  // After the last JavaScript getter of the call's arguments has run: throws a TypeError
  // naming the argument if a borrowed array was detached, transferred or resized meanwhile.
  void confirmUnchanged(Napi::Env env) const;

  // For a call that outlives the JS callback (a worker): turns the kept objects into
  // persistent references, released when this object is destroyed.
  void persist();

 private:
  struct Borrowed {
    Napi::TypedArray array;
    std::string name;
    const void* data;
    size_t bytes;
  };
  struct Free {
    void operator()(void* p) const;
  };

  const void* takeBytes(const Napi::TypedArray& array, const std::string& name);

  InputUse use_;
  std::vector<Borrowed> borrowed_;                // Borrow: what was read, for confirmUnchanged()
  std::vector<std::unique_ptr<void, Free>> copies_;  // Copy: the call's own memory
  std::vector<Napi::Object> kept_;                // until persist()
  std::vector<Napi::ObjectReference> persistent_;
};

}  // namespace siglip::addon
