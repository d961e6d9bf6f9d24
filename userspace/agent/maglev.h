// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table
// of SKIFF_MAGLEV_SIZE entries in which every backend owns a near-equal
// share, and removing one backend moves little more than that backend's
// own entries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace skiff::agent {

// table[i] is an index into names. names must be unique; empty -> empty.
std::vector<uint32_t> maglev_table(const std::vector<std::string>& names, uint32_t size);

}  // namespace skiff::agent
