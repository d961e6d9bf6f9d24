// The built-in IPAM: hands out addresses of one IPv4 range, one lease file
// per address (named by the address, holding the owner), under a file lock.
// Lease files appear atomically (written aside, then link()ed into place),
// so a crash at any point leaves either a complete lease or none.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/ipv4.h"
#include "common/result.h"

namespace skiff::ipam {

struct Owner {
    std::string container_id;
    std::string ifname;
    bool operator==(const Owner&) const = default;
};

class Allocator {
public:
    // dir holds the leases; range is the pool (e.g. the node's PodCIDR).
    // The network address, the first host address (reserved for the node)
    // and the broadcast address are never handed out.
    static Result<Allocator> open(std::string dir, Ipv4Prefix range);

    // The address leased to owner, reusing an existing lease of the same
    // owner (a retried ADD gets the same IP). ENOSPC when the pool is full.
    Result<Ipv4> allocate(const Owner& owner);
    // Remove owner's leases; returns the released addresses (none is fine).
    Result<std::vector<Ipv4>> release(const Owner& owner);
    Status release_ip(Ipv4 ip);
    // All leases.
    Result<std::map<Ipv4, Owner>> leases();

    Ipv4 first() const { return first_; }
    Ipv4 last() const { return last_; }
    uint64_t capacity() const { return uint64_t{last_.value()} - first_.value() + 1; }

    static constexpr std::chrono::milliseconds kLockTimeout{10000};

private:
    Allocator(std::string dir, Ipv4Prefix range, Ipv4 first, Ipv4 last)
        : dir_(std::move(dir)), range_(range), first_(first), last_(last) {}
    Result<std::map<Ipv4, Owner>> leases_locked();
    std::string lease_path(Ipv4 ip) const { return dir_ + "/" + ip.str(); }

    std::string dir_;
    Ipv4Prefix range_;
    Ipv4 first_, last_;
};

}  // namespace skiff::ipam
