// stackup — undefines the macros of macro_scope.hpp.
// SPDX-License-Identifier: MIT
#undef STACKUP_ALWAYS_INLINE
#undef STACKUP_COLD
#undef STACKUP_INLINE_STEPS
