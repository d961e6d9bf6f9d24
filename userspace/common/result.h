// Errors as values: Result<T> carries either a T or an Error (errno-style
// code plus human context). No exceptions cross library boundaries.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace skiff {

struct Error {
    int code = 0;         // errno value (positive), or 0 when not an OS error
    std::string message;  // what failed, with context

    static Error os(int err, std::string what) { return Error{err, std::move(what) + ": " + std::strerror(err)}; }
    static Error errno_(std::string what) { return os(errno, std::move(what)); }
    static Error invalid(std::string what) { return Error{EINVAL, std::move(what)}; }

    // Prefix the message with more context, keeping the code.
    Error wrap(const std::string& ctx) const { return Error{code, ctx + ": " + message}; }
};

// Either a T or an error E (by default an errno-style Error).
template <typename T, typename E = Error>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
    Result(E err) : v_(std::move(err)) {}      // NOLINT

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const E& error() const { return std::get<1>(v_); }
    T value_or(T fallback) const& { return ok() ? std::get<0>(v_) : std::move(fallback); }

private:
    std::variant<T, E> v_;
};

template <typename E>
class [[nodiscard]] Result<void, E> {
public:
    Result() = default;
    Result(E err) : err_(std::move(err)), ok_(false) {}  // NOLINT

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const E& error() const { return err_; }

private:
    E err_{};
    bool ok_ = true;
};

using Status = Result<void>;

inline Status ok() { return Status{}; }

}  // namespace skiff

// Propagate an error from an expression returning Result/Status.
#define SKIFF_TRY(expr)                                      \
    do {                                                     \
        auto skiff_try_r_ = (expr);                          \
        if (!skiff_try_r_.ok()) return skiff_try_r_.error(); \
    } while (0)

#define SKIFF_CONCAT_INNER(a, b) a##b
#define SKIFF_CONCAT(a, b) SKIFF_CONCAT_INNER(a, b)
#define SKIFF_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
    auto tmp = (expr);                              \
    if (!tmp.ok()) return tmp.error();              \
    lhs = std::move(tmp).value()
// SKIFF_ASSIGN_OR_RETURN(auto x, f());
#define SKIFF_ASSIGN_OR_RETURN(lhs, expr) SKIFF_ASSIGN_OR_RETURN_IMPL(SKIFF_CONCAT(skiff_r_, __LINE__), lhs, expr)
