#pragma once
// Payload: the immutable bytes a message carries. Up to kInlineBytes live
// inside the payload object (no allocation); larger ones sit in one refcounted
// heap buffer shared by every copy, so a fan-out to N receivers costs one
// allocation and N reference counts.
//
//   Payload p = Payload::of(Order{42, 1.5});   // trivially copyable value
//   Order o = p.as<Order>();
//   Payload text("hello");                      // bytes of a string

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <string_view>
#include <type_traits>

#include "base/check.hpp"

namespace swarm {

namespace detail {
/// Shared heap buffer for large payloads: refcount, size, then the bytes.
struct SharedBuffer {
  std::atomic<std::uint32_t> refs;
  std::uint32_t size;
  std::byte* data() { return reinterpret_cast<std::byte*>(this + 1); }
};
}  // namespace detail

/// An immutable byte payload; copies share large buffers. Thread-compatible.
class Payload {
 public:
  static constexpr std::size_t kInlineBytes = 32;

  Payload() noexcept = default;
  explicit Payload(std::span<const std::byte> bytes);
  explicit Payload(std::string_view text)
      : Payload(std::as_bytes(std::span(text.data(), text.size()))) {}
  Payload(const Payload& other) noexcept;
  Payload(Payload&& other) noexcept;
  Payload& operator=(Payload other) noexcept;
  ~Payload() { release(); }

  /// A payload holding the bytes of a trivially copyable value.
  template <class T>
  static Payload of(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>, "Payload::of needs a trivially copyable type");
    return Payload(std::as_bytes(std::span(&value, 1)));
  }

  std::span<const std::byte> bytes() const noexcept {
    return heap_tagged() ? std::span<const std::byte>(heap()->data(), heap()->size)
                         : std::span<const std::byte>(storage_, size_);
  }
  std::string_view text() const noexcept {
    auto b = bytes();
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  std::size_t size() const noexcept { return bytes().size(); }
  bool is_inline() const noexcept { return !heap_tagged(); }

  /// The value a Payload::of<T> stored. REQUIRES: size() == sizeof(T).
  template <class T>
  T as() const noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    T out{};
    auto b = bytes();
    SWARM_DCHECK(b.size() == sizeof(T));
    std::memcpy(&out, b.data(), b.size() < sizeof(T) ? b.size() : sizeof(T));
    return out;
  }

 private:
  static constexpr std::uint8_t kHeapTag = 0xff;  // size_ value: storage_ holds a SharedBuffer*
  bool heap_tagged() const noexcept { return size_ == kHeapTag; }
  detail::SharedBuffer* heap() const noexcept {
    detail::SharedBuffer* buf;
    std::memcpy(&buf, storage_, sizeof(buf));
    return buf;
  }
  void release() noexcept;

  alignas(8) std::byte storage_[kInlineBytes]{};  // zeroed: keeps GCC's -Wmaybe-uninitialized quiet under sanitizers
  std::uint8_t size_ = 0;
};

inline Payload::Payload(std::span<const std::byte> bytes) {
  if (bytes.size() <= kInlineBytes) {
    if (!bytes.empty()) std::memcpy(storage_, bytes.data(), bytes.size());
    size_ = static_cast<std::uint8_t>(bytes.size());
    return;
  }
  SWARM_CHECK(bytes.size() <= UINT32_MAX);
  void* mem = ::operator new(sizeof(detail::SharedBuffer) + bytes.size());
  auto* buf = new (mem) detail::SharedBuffer{{1}, static_cast<std::uint32_t>(bytes.size())};
  std::memcpy(buf->data(), bytes.data(), bytes.size());
  std::memcpy(storage_, &buf, sizeof(buf));
  size_ = kHeapTag;
}

inline Payload::Payload(const Payload& other) noexcept {
  std::memcpy(storage_, other.storage_, kInlineBytes);
  size_ = other.size_;
  if (heap_tagged()) heap()->refs.fetch_add(1, std::memory_order_relaxed);
}

inline Payload::Payload(Payload&& other) noexcept {
  std::memcpy(storage_, other.storage_, kInlineBytes);
  size_ = other.size_;
  other.size_ = 0;
}

inline Payload& Payload::operator=(Payload other) noexcept {
  release();
  std::memcpy(storage_, other.storage_, kInlineBytes);
  size_ = other.size_;
  other.size_ = 0;
  return *this;
}

inline void Payload::release() noexcept {
  if (heap_tagged() && heap()->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    heap()->~SharedBuffer();
    ::operator delete(heap());
  }
  size_ = 0;
}

}  // namespace swarm
