#include "allocator.h"

#include <optional>

#include "common/files.h"

namespace skiff::ipam {
namespace {

const char* kLockName = "lock";
const char* kCursorName = "last_reserved_ip";

std::string encode(const Owner& o) { return o.container_id + "\n" + o.ifname + "\n"; }

std::optional<Owner> decode(const std::string& s) {
    auto nl = s.find('\n');
    if (nl == std::string::npos) return std::nullopt;
    Owner o;
    o.container_id = s.substr(0, nl);
    auto rest = s.substr(nl + 1);
    auto nl2 = rest.find('\n');
    o.ifname = rest.substr(0, nl2);
    if (o.container_id.empty()) return std::nullopt;
    return o;
}

}  // namespace

Result<Allocator> Allocator::open(std::string dir, Ipv4Prefix range) {
    if (range.len() > 30) return Error::invalid("IPAM range " + range.str() + " is too small (at most /30)");
    SKIFF_TRY(mkdir_p(dir, 0700));
    Ipv4 first(range.network().value() + 2);
    Ipv4 last(range.broadcast().value() - 1);
    return Allocator(std::move(dir), range, first, last);
}

Result<std::map<Ipv4, Owner>> Allocator::leases_locked() {
    // Every writer here holds the lock, so any temporary file is a killed
    // one's: collected by whoever comes next (ADD, DEL, GC, STATUS).
    remove_temp_files(dir_, TempFiles::All);
    SKIFF_ASSIGN_OR_RETURN(auto names, list_dir(dir_));
    std::map<Ipv4, Owner> out;
    for (const auto& n : names) {
        auto ip = Ipv4::parse(n);
        if (!ip) continue;  // lock, cursor, temporary files
        auto content = read_file(dir_ + "/" + n, 4096);
        if (!content) continue;  // released concurrently
        if (auto o = decode(*content)) out.emplace(*ip, *o);
    }
    return out;
}

Result<std::map<Ipv4, Owner>> Allocator::leases() {
    SKIFF_ASSIGN_OR_RETURN(auto lock, FileLock::acquire(dir_ + "/" + kLockName, kLockTimeout));
    return leases_locked();
}

Result<Ipv4> Allocator::allocate(const Owner& owner) {
    SKIFF_ASSIGN_OR_RETURN(auto lock, FileLock::acquire(dir_ + "/" + kLockName, kLockTimeout));
    SKIFF_ASSIGN_OR_RETURN(auto current, leases_locked());
    for (const auto& [ip, o] : current)
        if (o == owner) return ip;

    // Continue after the last address handed out, so a just-released
    // address is not reused at once (stale conntrack, ARP caches).
    uint32_t start = first_.value();
    if (auto c = read_file(dir_ + "/" + kCursorName, 64); c.ok()) {
        if (auto ip = Ipv4::parse(*c);
            ip.ok() && range_.contains(*ip) && ip->value() >= first_.value() && ip->value() < last_.value())
            start = ip->value() + 1;
    }
    uint64_t n = capacity();
    for (uint64_t i = 0; i < n; ++i) {
        uint32_t v = first_.value() + static_cast<uint32_t>((start - first_.value() + i) % n);
        Ipv4 ip(v);
        if (current.count(ip)) continue;
        auto s = create_file_exclusive(lease_path(ip), encode(owner));
        if (!s) {
            if (s.error().code == EEXIST) continue;  // a lease without a readable owner
            return s.error();
        }
        // The cursor is a hint only; failing to move it is harmless.
        (void)write_file_atomic(dir_ + "/" + kCursorName, ip.str());
        return ip;
    }
    return Error{ENOSPC,
                 "no free address left in " + range_.str() + " (" + std::to_string(n) + " addresses, all leased)"};
}

Result<std::vector<Ipv4>> Allocator::release(const Owner& owner) {
    SKIFF_ASSIGN_OR_RETURN(auto lock, FileLock::acquire(dir_ + "/" + kLockName, kLockTimeout));
    SKIFF_ASSIGN_OR_RETURN(auto current, leases_locked());
    std::vector<Ipv4> released;
    for (const auto& [ip, o] : current) {
        if (!(o == owner)) continue;
        SKIFF_TRY(remove_file(lease_path(ip)));
        released.push_back(ip);
    }
    return released;
}

Status Allocator::release_ip(Ipv4 ip) {
    SKIFF_ASSIGN_OR_RETURN(auto lock, FileLock::acquire(dir_ + "/" + kLockName, kLockTimeout));
    return remove_file(lease_path(ip));
}

}  // namespace skiff::ipam
