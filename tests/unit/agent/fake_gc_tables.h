// In-memory conntrack and masquerade tables for the GC tests: what the
// agent's CtTable and SnatTable see of the pinned maps, with hooks for what
// the datapath does between a walk and the deletes.
#pragma once

#include <arpa/inet.h>

#include <cerrno>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>

#include <gtest/gtest.h>

#include "agent/ct_gc.h"
#include "agent/snat_gc.h"

namespace skiff::agent::fakes {

class FakeCtTable final : public CtTable {
public:
    std::map<skiff_ct_key, skiff_ct_value, CtKeyLess> entries;
    int sweeps = 0;
    bool fail = false;

    // Runs between the walk and the first lookup: what the datapath does
    // meanwhile.
    std::function<void()> after_walk;

    Result<uint64_t> walk(const std::function<void(const skiff_ct_key&, const skiff_ct_value&)>& f) override {
        ++sweeps;
        if (fail) return Error{EPERM, "fake ct: iterate failed"};
        for (const auto& [k, v] : entries) f(k, v);
        if (after_walk) after_walk();
        return entries.size();
    }
    Result<std::optional<skiff_ct_value>> lookup(const skiff_ct_key& k) override {
        auto it = entries.find(k);
        if (it == entries.end()) return std::optional<skiff_ct_value>();
        return std::optional<skiff_ct_value>(it->second);
    }
    Status remove(const skiff_ct_key& k) override {
        entries.erase(k);
        return ok();
    }

    bool has(const skiff_ct_key& k) const { return entries.count(k) != 0; }
};

class FakeSnatTable final : public SnatTable {
public:
    NatEntries entries;
    std::function<void()> after_list;  // the datapath, between listing and deleting
    bool fail = false;

    Result<NatEntries> list() override {
        if (fail) return Error{EPERM, "fake snat: iterate failed"};
        NatEntries copy = entries;
        if (after_list) after_list();
        return copy;
    }
    Result<std::optional<skiff_nat_value>> lookup(const skiff_ct_key& k) override {
        auto it = entries.find(k);
        if (it == entries.end()) return std::optional<skiff_nat_value>();
        return std::optional<skiff_nat_value>(it->second);
    }
    Status remove(const skiff_ct_key& k) override {
        entries.erase(k);
        return ok();
    }
    Status sync_nomasq(const std::set<Ipv4Prefix>& want) override {
        nomasq = want;
        return ok();
    }
    bool has(const skiff_ct_key& k) const { return entries.count(k) != 0; }

    std::set<Ipv4Prefix> nomasq;  // the no-masquerade set as last synced
};

// Each key in `kept` is still in `table` and each in `gone` is not; a key is
// named by its source port and direction.
template <class Table>
void expect_kept_and_gone(const Table& table, std::initializer_list<skiff_ct_key> kept,
                          std::initializer_list<skiff_ct_key> gone) {
    for (const auto& k : kept) EXPECT_TRUE(table.has(k)) << "deleted: sport " << ntohs(k.sport) << " dir " << +k.dir;
    for (const auto& k : gone) EXPECT_FALSE(table.has(k)) << "kept: sport " << ntohs(k.sport) << " dir " << +k.dir;
}

}  // namespace skiff::agent::fakes
