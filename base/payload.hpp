#pragma once
// Payload: the immutable, typed bytes a message carries. Up to kInlineBytes
// live inside the payload object (no allocation); larger ones sit in one
// refcounted heap buffer shared by every copy, so a fan-out to N receivers
// costs one allocation and N reference counts.
//
// Every payload knows what it holds, checked in every build:
//   - an in-process value (Payload::of a trivially copyable T): zero-copy and
//     tagged with T's type; as<T>() of another type throws PayloadTypeError;
//   - bytes with a content type, the form that can cross a process:
//     text/plain (strings), application/octet-stream (byte vectors),
//     application/json, application/msgpack, application/cbor (runtime/json.hpp).
//
//   Payload p = Payload::of(Order{42, 1.5});   // in-process value, tagged Order
//   Order o = p.as<Order>();                    // p.as<int>() throws PayloadTypeError
//   Payload t = Payload::of(std::string("hi")); // text/plain; t.as<std::string>() == "hi"

#include <cxxabi.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "base/check.hpp"

namespace swarm {

/// What a payload's bytes are. Values other than `value` are the content types
/// that may cross a process (docs/protocol.md names them by their MIME names).
enum class ContentType : std::uint8_t {
  octet_stream,  // application/octet-stream: opaque bytes
  text,          // text/plain (UTF-8)
  json,          // application/json
  msgpack,       // application/msgpack
  cbor,          // application/cbor
  value,         // an in-process C++ value, tagged with its type; never leaves the process
};
inline constexpr int kContentTypeCount = 6;

/// The MIME name ("application/json"); "x-swarm/value" for in-process values.
constexpr std::string_view to_string(ContentType c) noexcept {
  switch (c) {
    case ContentType::octet_stream: return "application/octet-stream";
    case ContentType::text: return "text/plain";
    case ContentType::json: return "application/json";
    case ContentType::msgpack: return "application/msgpack";
    case ContentType::cbor: return "application/cbor";
    case ContentType::value: return "x-swarm/value";
  }
  return "unknown";
}

/// The content type named `mime` (parameters such as "; charset=utf-8" are
/// ignored); nullopt for names Swarm does not know.
inline std::optional<ContentType> parse_content_type(std::string_view mime) noexcept {
  if (auto semi = mime.find(';'); semi != std::string_view::npos) mime = mime.substr(0, semi);
  while (!mime.empty() && mime.back() == ' ') mime.remove_suffix(1);
  for (int i = 0; i < kContentTypeCount - 1; ++i) {  // not value: it cannot arrive from outside
    if (to_string(static_cast<ContentType>(i)) == mime) return static_cast<ContentType>(i);
  }
  return std::nullopt;
}

/// as<T>() of a payload that does not hold a T.
class PayloadTypeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
/// Shared heap buffer for large payloads: refcount, size, then the bytes.
struct SharedBuffer {
  std::atomic<std::uint32_t> refs;
  std::uint32_t size;
  std::byte* data() { return reinterpret_cast<std::byte*>(this + 1); }
};

/// The types of in-process values, numbered from 1 in order of first use.
/// The numbers are this process's own and never leave it.
inline constexpr std::uint32_t kMaxValueTypes = 4096;
inline std::atomic<std::uint32_t> g_value_type_count{0};
inline std::atomic<const std::type_info*> g_value_types[kMaxValueTypes]{};

[[gnu::noinline, gnu::cold]] inline std::uint32_t register_value_type(const std::type_info& t) {
  const std::uint32_t id = g_value_type_count.fetch_add(1, std::memory_order_relaxed) + 1;
  SWARM_CHECK(id < kMaxValueTypes);
  g_value_types[id].store(&t, std::memory_order_release);
  return id;
}
template <class T>
[[gnu::always_inline]] inline std::uint32_t value_type_id() {
  static const std::uint32_t id = register_value_type(typeid(T));
  return id;
}

/// A readable C++ type name: demangled, "(anonymous namespace)::" removed.
inline std::string readable_type_name(const char* mangled) {
  int status = 0;
  char* out = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 && out != nullptr ? out : mangled;
  std::free(out);
  constexpr std::string_view kAnon = "(anonymous namespace)::";
  for (auto pos = name.find(kAnon); pos != std::string::npos; pos = name.find(kAnon, pos)) name.erase(pos, kAnon.size());
  return name;
}

template <class T>
inline constexpr bool is_string_like =
    std::is_convertible_v<const T&, std::string_view> && !std::is_same_v<T, std::nullptr_t>;
template <class T>
inline constexpr bool is_byte_vector =
    std::is_same_v<T, std::vector<std::byte>> || std::is_same_v<T, std::vector<std::uint8_t>>;
}  // namespace detail

/// Encodings of other types, for Payload::of / as. Specialize with
///   static Payload encode(const T&);  static T decode(const Payload&);
/// runtime/json.hpp does it for nlohmann::json and for types with
/// to_json/from_json that are not trivially copyable.
template <class T, class Enable = void>
struct PayloadCodec;

/// An immutable, typed payload; copies share large buffers. Thread-compatible.
class Payload {
 public:
  static constexpr std::size_t kInlineBytes = 32;

  Payload() noexcept = default;
  /// Bytes of the given content type (default: opaque bytes).
  explicit Payload(std::span<const std::byte> bytes, ContentType content = ContentType::octet_stream);
  /// The bytes of `text`, as text/plain unless told otherwise.
  explicit Payload(std::string_view text, ContentType content = ContentType::text)
      : Payload(std::as_bytes(std::span(text.data(), text.size())), content) {}
  Payload(const Payload& other) noexcept;
  Payload(Payload&& other) noexcept;
  Payload& operator=(Payload other) noexcept;
  ~Payload() { release(); }

  /// A payload holding `value`: a trivially copyable value is kept as itself
  /// (in-process, tagged with T, no allocation up to kInlineBytes); strings
  /// become text/plain, byte vectors application/octet-stream, and types with
  /// a PayloadCodec (JSON values, see runtime/json.hpp) their encoding.
  template <class T>
  [[gnu::always_inline]] static Payload of(const T& value);

  // -- reading ---

  /// The value of type T this payload holds. Throws PayloadTypeError naming
  /// both types when it holds something else (a crash, inside a handler).
  /// std::string reads the bytes of any non-value payload; byte vectors too.
  template <class T>
  [[gnu::always_inline]] T as() const;
  /// as<T>(), or nullopt instead of throwing.
  template <class T>
  std::optional<T> try_as() const;
  /// True if as<T>() would read a value without decoding (in-process T).
  template <class T>
  bool holds() const noexcept {
    return content_ == ContentType::value && value_type_ == detail::value_type_id<T>();
  }

  ContentType content_type() const noexcept { return content_; }
  /// What this payload holds, for error messages: "Order" or "application/json (12 bytes)".
  std::string describe() const;

  std::span<const std::byte> bytes() const noexcept {
    return heap_tagged() ? std::span<const std::byte>(heap()->data(), heap()->size)
                         : std::span<const std::byte>(storage_, size_);
  }
  /// The bytes as characters (meaningful for text and JSON payloads).
  std::string_view text() const noexcept {
    auto b = bytes();
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  std::size_t size() const noexcept { return bytes().size(); }
  bool empty() const noexcept { return size() == 0; }
  bool is_inline() const noexcept { return !heap_tagged(); }

 private:
  static constexpr std::uint8_t kHeapTag = 0xff;  // size_ value: storage_ holds a SharedBuffer*
  bool heap_tagged() const noexcept { return size_ == kHeapTag; }
  detail::SharedBuffer* heap() const noexcept {
    detail::SharedBuffer* buf;
    std::memcpy(&buf, storage_, sizeof(buf));
    return buf;
  }
  // An in-process value of type `value_type` (the hot path of every send:
  // inlined into the caller, the payload built in place).
  [[gnu::always_inline]] Payload(std::span<const std::byte> bytes, std::uint32_t value_type)
      : Payload(bytes, ContentType::value) {
    value_type_ = value_type;
  }
  void release() noexcept;
  [[noreturn]] void type_mismatch(const char* wanted) const;

  alignas(8) std::byte storage_[kInlineBytes]{};  // zeroed: keeps GCC's -Wmaybe-uninitialized quiet under sanitizers
  std::uint8_t size_ = 0;
  ContentType content_ = ContentType::octet_stream;
  std::uint32_t value_type_ = 0;  // content_ == value: detail::value_type_id<T>()
};

// -- implementation ---

inline Payload::Payload(std::span<const std::byte> bytes, ContentType content) : content_(content) {
  if (bytes.size() <= kInlineBytes) [[likely]] {
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

inline Payload::Payload(const Payload& other) noexcept
    : size_(other.size_), content_(other.content_), value_type_(other.value_type_) {
  std::memcpy(storage_, other.storage_, kInlineBytes);
  if (heap_tagged()) heap()->refs.fetch_add(1, std::memory_order_relaxed);
}

inline Payload::Payload(Payload&& other) noexcept
    : size_(other.size_), content_(other.content_), value_type_(other.value_type_) {
  std::memcpy(storage_, other.storage_, kInlineBytes);
  other.size_ = 0;
}

inline Payload& Payload::operator=(Payload other) noexcept {
  release();
  std::memcpy(storage_, other.storage_, kInlineBytes);
  size_ = other.size_;
  content_ = other.content_;
  value_type_ = other.value_type_;
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

template <class T>
inline Payload Payload::of(const T& value) {
  if constexpr (detail::is_string_like<T>) {
    return Payload(std::string_view(value), ContentType::text);
  } else if constexpr (detail::is_byte_vector<T>) {
    return Payload(std::as_bytes(std::span(value.data(), value.size())), ContentType::octet_stream);
  } else if constexpr (std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>) {
    return Payload(std::as_bytes(std::span(&value, 1)), detail::value_type_id<T>());
  } else if constexpr (requires { PayloadCodec<T>::encode(value); }) {
    return PayloadCodec<T>::encode(value);
  } else {
    static_assert(std::is_trivially_copyable_v<T>,
                  "Payload::of: no encoding for this type: make it trivially copyable, or include "
                  "runtime/json.hpp and give it to_json/from_json");
    return {};
  }
}

template <class T>
inline T Payload::as() const {
  if constexpr (std::is_same_v<T, std::string>) {
    if (content_ == ContentType::value) type_mismatch("std::string");
    return std::string(text());
  } else if constexpr (detail::is_byte_vector<T>) {
    if (content_ == ContentType::value) type_mismatch("a byte vector");
    auto b = bytes();
    auto* p = reinterpret_cast<const typename T::value_type*>(b.data());
    return T(p, p + b.size());
  } else if constexpr (std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>) {
    if (holds<T>()) [[likely]] {
      T out;
      std::memcpy(static_cast<void*>(&out), bytes().data(), sizeof(T));
      return out;
    }
    if constexpr (requires { PayloadCodec<T>::decode(*this); }) {
      if (content_ != ContentType::value) return PayloadCodec<T>::decode(*this);
    }
    type_mismatch(typeid(T).name());
  } else if constexpr (requires { PayloadCodec<T>::decode(*this); }) {
    return PayloadCodec<T>::decode(*this);
  } else {
    static_assert(std::is_trivially_copyable_v<T>,
                  "Payload::as: no decoding for this type: make it trivially copyable, or include "
                  "runtime/json.hpp and give it to_json/from_json");
  }
}

template <class T>
std::optional<T> Payload::try_as() const {
  if constexpr (std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> &&
                !requires { PayloadCodec<T>::decode(*this); }) {
    if (!holds<T>()) return std::nullopt;  // the common case, without an exception
  }
  try {
    return as<T>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

inline std::string Payload::describe() const {
  if (content_ == ContentType::value) {
    const std::type_info* t = value_type_ < detail::kMaxValueTypes
                                  ? detail::g_value_types[value_type_].load(std::memory_order_acquire)
                                  : nullptr;
    return t != nullptr ? detail::readable_type_name(t->name()) : "an unknown value";
  }
  return std::string(to_string(content_)) + " (" + std::to_string(size()) + " bytes)";
}

inline void Payload::type_mismatch(const char* wanted) const {
  // typeid names are mangled; "std::string"-like names pass through as they are.
  const std::string name = std::strchr(wanted, ' ') != nullptr || std::strchr(wanted, ':') != nullptr
                               ? std::string(wanted)
                               : detail::readable_type_name(wanted);
  throw PayloadTypeError("payload: as<" + name + ">() on a payload holding " + describe());
}

}  // namespace swarm
