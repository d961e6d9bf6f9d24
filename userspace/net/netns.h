// Network namespace handles: open by path, compare, and run code inside one.
#pragma once

#include <string>

#include "common/fd.h"
#include "common/result.h"

namespace skiff {

class NetNs {
public:
    // Opens a namespace file such as /run/netns/NAME or /proc/PID/ns/net.
    // ENOENT when it does not exist, EINVAL when it is not a net namespace.
    static Result<NetNs> open(const std::string& path);
    static Result<NetNs> current();

    int fd() const { return fd_.get(); }
    const std::string& path() const { return path_; }
    bool same_as(const NetNs& other) const;

    // setns() into this namespace (calling thread only).
    Status enter() const;

private:
    NetNs(UniqueFd fd, std::string path, unsigned long dev, unsigned long ino)
        : fd_(std::move(fd)), path_(std::move(path)), dev_(dev), ino_(ino) {}
    UniqueFd fd_;
    std::string path_;
    unsigned long dev_ = 0, ino_ = 0;
};

// Enter ns, run f, return to the original namespace (even if f fails).
template <typename F>
auto in_netns(const NetNs& ns, F&& f) -> decltype(f()) {
    auto orig = NetNs::current();
    if (!orig) return orig.error();
    if (auto s = ns.enter(); !s) return s.error();
    auto r = f();
    if (auto s = orig->enter(); !s) return s.error().wrap("return to original netns");
    return r;
}

}  // namespace skiff
