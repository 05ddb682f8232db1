#include "plexus/wire/cbor.hpp"

#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <utility>

#include "wire/cbor_head.hpp"

namespace plexus::wire {
namespace {

using namespace detail;

// A stack that keeps its first N elements inline and spills to the heap beyond, so
// that the codec's explicit stacks cost no allocation for ordinary nesting depths.
template <class T, std::size_t N>
class small_stack {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  T& back() noexcept { return size_ <= N ? inline_[size_ - 1] : heap_[size_ - N - 1]; }
  void push(T v) {
    if (size_ < N) {
      inline_[size_] = std::move(v);
    } else {
      heap_.push_back(std::move(v));
    }
    ++size_;
  }
  void pop() noexcept {
    if (size_ > N) heap_.pop_back();
    --size_;
  }

 private:
  std::array<T, N> inline_{};
  std::vector<T> heap_;
  std::size_t size_ = 0;
};

// ---- encoding ----------------------------------------------------------------

// cbor2 writes every float as a double, except NaN and the infinities, which it
// writes as the half floats f9 7e00, f9 7c00 and f9 fc00.
void put_float(std::vector<std::uint8_t>& out, double d) {
  if (std::isnan(d)) {
    out.insert(out.end(), {0xf9, 0x7e, 0x00});
  } else if (std::isinf(d)) {
    out.insert(out.end(), {0xf9, static_cast<std::uint8_t>(d > 0 ? 0x7c : 0xfc), 0x00});
  } else {
    const auto bits = std::bit_cast<std::uint64_t>(d);
    std::array<std::uint8_t, 9> b{};
    b[0] = 0xfb;
    for (std::size_t i = 0; i < 8; ++i)
      b[8 - i] = static_cast<std::uint8_t>(bits >> (8 * i));
    out.insert(out.end(), b.begin(), b.end());
  }
}

// Writes one non-container value; containers are handled by encode_value's stack.
void put_scalar(std::vector<std::uint8_t>& out, const value& v) {
  switch (v.type()) {
    case value::value_t::null:
    case value::value_t::discarded:  // not a CBOR value; written as null
      out.push_back(0xf6);
      break;
    case value::value_t::boolean:
      out.push_back(v.get<bool>() ? 0xf5 : 0xf4);
      break;
    case value::value_t::number_unsigned:
      put_head(out, major_unsigned, v.get<std::uint64_t>());
      break;
    case value::value_t::number_integer: {
      const auto i = v.get<std::int64_t>();
      if (i >= 0) {
        put_head(out, major_unsigned, static_cast<std::uint64_t>(i));
      } else {
        // -1 - i without overflow for INT64_MIN.
        put_head(out, major_negative, static_cast<std::uint64_t>(-(i + 1)));
      }
      break;
    }
    case value::value_t::number_float:
      put_float(out, v.get<double>());
      break;
    case value::value_t::string:
      put_text(out, v.get_ref<const std::string&>());
      break;
    case value::value_t::binary: {
      const auto& b = v.get_binary();  // any subtype is dropped: cbor2 writes no tag
      put_head(out, major_bytes, b.size());
      out.insert(out.end(), b.begin(), b.end());
      break;
    }
    case value::value_t::array:
    case value::value_t::object:
      break;  // unreachable: the caller writes containers
  }
}

// ---- decoding ----------------------------------------------------------------

// Validates UTF-8 as Python's strict decoder does: no overlong forms, no surrogates,
// nothing above U+10FFFF.
bool valid_utf8(const std::uint8_t* p, std::size_t n) noexcept {
  std::size_t i = 0;
  while (i < n) {
    const std::uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint8_t lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

double half_to_double(std::uint16_t h) noexcept {
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  double d;
  if (exp == 0) {
    d = std::ldexp(mant, -24);
  } else if (exp == 31) {
    d = mant == 0 ? std::numeric_limits<double>::infinity()
                  : std::numeric_limits<double>::quiet_NaN();
  } else {
    d = std::ldexp(mant + 1024, exp - 25);
  }
  return (h & 0x8000) ? -d : d;
}

// One strict, iterative CBOR decoder run over one input. Items nest through an
// explicit stack, so input depth never becomes native stack depth; the depth limit
// is checked before a container is opened.
class decoder {
 public:
  decoder(std::span<const std::uint8_t> in, const limits& lim) : in_(in), lim_(lim) {}

  result<value> run() {
    if (in_.size() > lim_.max_message_bytes) {
      return plexus::error(errc::resource_exhausted, "message of " + std::to_string(in_.size()) +
                                                         " bytes exceeds max_message_bytes (" +
                                                         std::to_string(lim_.max_message_bytes) +
                                                         ")");
    }
    value root;
    if (!read_item(root)) return std::move(error_);
    while (!stack_.empty()) {
      frame& f = stack_.back();
      if (f.remaining == 0) {
        stack_.pop();
        continue;
      }
      --f.remaining;
      value* slot = nullptr;
      if (f.is_map) {
        slot = read_key(*f.node);
        if (slot == nullptr) return std::move(error_);
      } else {
        --pending_;
        slot = &f.node->get_ref<value::array_t&>().emplace_back();
      }
      if (!read_item(*slot)) return std::move(error_);
    }
    if (pos_ != in_.size()) {
      return plexus::error(errc::invalid_argument,
                           std::to_string(in_.size() - pos_) +
                               " trailing bytes after the CBOR item at offset " +
                               std::to_string(pos_));
    }
    return root;
  }

 private:
  struct frame {
    value* node = nullptr;        // the array or map being filled; stable while on the stack
    std::uint64_t remaining = 0;  // elements (array) or entries (map) still to read
    bool is_map = false;
  };

  struct head {
    std::uint8_t major = 0;
    std::uint8_t info = 0;  // the additional information, low 5 bits of the first byte
    std::uint64_t arg = 0;
  };

  bool fail(errc code, std::string msg) {
    error_ = plexus::error(code, std::move(msg));
    return false;
  }

  // The input ends before the item being read (and the items still pending) do.
  bool truncated() {
    return fail(errc::invalid_argument,
                "truncated CBOR: the input ends inside the item at offset " + std::to_string(pos_));
  }

  bool truncated_string(std::uint64_t len) {
    return fail(errc::invalid_argument, "truncated CBOR: string of " + std::to_string(len) +
                                            " bytes at offset " + std::to_string(pos_) +
                                            " does not fit in the " + std::to_string(left()) +
                                            " bytes left");
  }

  std::size_t left() const noexcept { return in_.size() - pos_; }
  // Bytes not promised to pending items (each takes at least one byte). Every read
  // is checked against it, so truncation is found as early as possible and claimed
  // lengths are bounded by the input size.
  std::uint64_t room() const noexcept { return left() > pending_ ? left() - pending_ : 0; }

  // Reads an item's head; indefinite lengths, break codes and reserved additional
  // information are errors.
  bool read_head(head& h) {
    if (room() < 1) return truncated();
    const std::size_t at = pos_;
    const std::uint8_t b = in_[pos_++];
    h.major = b >> 5;
    h.info = b & 0x1f;
    if (h.info < 24) {
      h.arg = h.info;
      return true;
    }
    if (h.info <= 27) {
      const std::size_t n = std::size_t{1} << (h.info - 24);
      if (room() < n) return truncated();
      h.arg = 0;
      for (std::size_t i = 0; i < n; ++i) {
        h.arg = (h.arg << 8) | in_[pos_++];
      }
      return true;
    }
    if (h.info == 31) {
      if (h.major == major_simple) {
        return fail(errc::invalid_argument,
                    "unexpected CBOR break code (0xff) at offset " + std::to_string(at));
      }
      if (h.major >= major_bytes && h.major <= major_map) {
        return fail(
            errc::invalid_argument,
            "indefinite-length CBOR items are not supported (offset " + std::to_string(at) + ")");
      }
      return fail(errc::invalid_argument, "malformed CBOR: major type " + std::to_string(h.major) +
                                              " has no indefinite length (offset " +
                                              std::to_string(at) + ")");
    }
    return fail(errc::invalid_argument, "malformed CBOR: reserved additional information " +
                                            std::to_string(h.info) + " at offset " +
                                            std::to_string(at));
  }

  // Reads `len` bytes of a text string that must be valid UTF-8.
  bool read_text(std::uint64_t len, std::string& s) {
    if (len > room()) return truncated_string(len);
    const auto* p = in_.data() + pos_;
    if (!valid_utf8(p, len)) {
      return fail(errc::invalid_argument,
                  "CBOR text string at offset " + std::to_string(pos_) + " is not valid UTF-8");
    }
    s.assign(reinterpret_cast<const char*>(p), len);
    pos_ += len;
    return true;
  }

  // Reads a map key (a text string), inserts it with a null value and returns the
  // slot for its value; nullptr on error.
  value* read_key(value& map) {
    --pending_;
    const std::size_t at = pos_;
    head h;
    if (!read_head(h)) return nullptr;
    if (h.major != major_text) {
      fail(errc::invalid_argument,
           "CBOR map keys must be text strings (key at offset " + std::to_string(at) + ")");
      return nullptr;
    }
    std::string key;
    if (!read_text(h.arg, key)) return nullptr;
    auto [it, inserted] = map.get_ref<value::object_t&>().emplace(std::move(key), nullptr);
    if (!inserted) {
      fail(errc::invalid_argument,
           "duplicate CBOR map key \"" + it->first + "\" at offset " + std::to_string(at));
      return nullptr;
    }
    --pending_;
    return &it->second;
  }

  // Opens an array of `count` elements or a map of `count` entries in `slot`. Every
  // pending item (a map entry is two) takes at least one byte, which bounds both the
  // claimed counts and what is reserved for them by the input size.
  bool open(value& slot, std::uint64_t count, bool is_map) {
    if (stack_.size() + 1 > lim_.max_nesting_depth) {
      return fail(errc::resource_exhausted, "CBOR nesting deeper than max_nesting_depth (" +
                                                std::to_string(lim_.max_nesting_depth) +
                                                ") at offset " + std::to_string(pos_));
    }
    if (count > (is_map ? room() / 2 : room())) {
      return fail(errc::invalid_argument,
                  std::string("truncated CBOR: ") + (is_map ? "map" : "array") + " of " +
                      std::to_string(count) + " items does not fit in the " +
                      std::to_string(left()) + " bytes left");
    }
    if (is_map) {
      slot = value::object();
    } else {
      slot = value::array();
      slot.get_ref<value::array_t&>().reserve(count);
    }
    if (count > 0) {
      pending_ += is_map ? count * 2 : count;
      stack_.push(frame{&slot, count, is_map});
    }
    return true;
  }

  // Reads one item into `slot`; a container is opened and filled later by run().
  bool read_item(value& slot) {
    const std::size_t at = pos_;
    head h;
    if (!read_head(h)) return false;
    switch (h.major) {
      case major_unsigned:
        slot = h.arg;
        return true;
      case major_negative:
        if (h.arg > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          return fail(errc::invalid_argument, "CBOR negative integer below -2^63 at offset " +
                                                  std::to_string(at) + " is not supported");
        }
        slot = -1 - static_cast<std::int64_t>(h.arg);
        return true;
      case major_bytes: {
        if (h.arg > room()) return truncated_string(h.arg);
        const auto* p = in_.data() + pos_;
        slot = value::binary(value::binary_t::container_type(p, p + h.arg));
        pos_ += h.arg;
        return true;
      }
      case major_text: {
        std::string s;
        if (!read_text(h.arg, s)) return false;
        slot = std::move(s);
        return true;
      }
      case major_array:
        return open(slot, h.arg, false);
      case major_map:
        return open(slot, h.arg, true);
      case major_tag:
        return fail(errc::invalid_argument, "CBOR tags are not supported (tag " +
                                                std::to_string(h.arg) + " at offset " +
                                                std::to_string(at) + ")");
      default:
        return read_simple(h, at, slot);
    }
  }

  bool read_simple(const head& h, std::size_t at, value& slot) {
    switch (h.info) {
      case 20:
        slot = false;
        return true;
      case 21:
        slot = true;
        return true;
      case 22:
      case 23:  // undefined has no JSON counterpart; it reads as null
        slot = nullptr;
        return true;
      case 25:
        slot = half_to_double(static_cast<std::uint16_t>(h.arg));
        return true;
      case 26:
        slot = static_cast<double>(std::bit_cast<float>(static_cast<std::uint32_t>(h.arg)));
        return true;
      case 27:
        slot = std::bit_cast<double>(h.arg);
        return true;
      default:
        return fail(errc::invalid_argument, "unsupported CBOR simple value " +
                                                std::to_string(h.arg) + " at offset " +
                                                std::to_string(at));
    }
  }

  std::span<const std::uint8_t> in_;
  const limits& lim_;
  std::size_t pos_ = 0;
  std::uint64_t pending_ = 0;  // items promised by open containers, not yet started
  small_stack<frame, 16> stack_;
  plexus::error error_;
};

}  // namespace

// ---- public entry points ---------------------------------------------------------

void encode_value(std::vector<std::uint8_t>& out, const value& v) {
  struct frame {
    value::const_iterator it;
    value::const_iterator end;
    bool is_map = false;
  };
  small_stack<frame, 16> stack;
  const value* cur = &v;
  for (;;) {
    if (cur->is_array()) {
      put_head(out, major_array, cur->size());
      if (!cur->empty()) stack.push(frame{cur->cbegin(), cur->cend(), false});
    } else if (cur->is_object()) {
      put_head(out, major_map, cur->size());
      if (!cur->empty()) stack.push(frame{cur->cbegin(), cur->cend(), true});
    } else {
      put_scalar(out, *cur);
    }
    // Move to the next item to write, closing finished containers.
    for (;;) {
      if (stack.empty()) return;
      frame& f = stack.back();
      if (f.it == f.end) {
        stack.pop();
        continue;
      }
      if (f.is_map) put_text(out, f.it.key());
      cur = &*f.it;
      ++f.it;
      break;
    }
  }
}

result<value> decode_value(std::span<const std::uint8_t> bytes, const limits& lim) {
  try {
    return decoder(bytes, lim).run();
  } catch (const std::exception& e) {  // only allocation failure can get here
    return plexus::error(errc::resource_exhausted,
                         std::string("decoding CBOR failed: ") + e.what());
  }
}

}  // namespace plexus::wire
