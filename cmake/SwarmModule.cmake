# swarm_add_module(NAME SOURCES ... DEPS ... PRIVATE_DEPS ... TESTS ... TEST_DEPS ...)
# One module = one folder = one library target `swarm_NAME` (alias swarm::NAME, and
# Swarm::NAME as an installed package exports it), plus one test executable `NAME_test`
# built from the *_test.cpp files beside it.
#   DEPS          what the module's installed headers need (include, macros, link): PUBLIC.
#   PRIVATE_DEPS  what only its .cpp files use. The libraries are static, so these still
#                 reach the link line of users (as $<LINK_ONLY:...>), but not their compiles.
#   TEST_DEPS     what the tests alone use. Tests also get PRIVATE_DEPS: they test the
#                 implementation.
#   DETAIL_HEADERS  the detail/ headers that installed headers include (installed too).
# The library and its headers are installed (see swarm_install_headers).
function(swarm_add_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS;PRIVATE_DEPS;TESTS;TEST_DEPS;DETAIL_HEADERS" ${ARGN})
  add_library(swarm_${name} ${M_SOURCES})
  add_library(swarm::${name} ALIAS swarm_${name})
  add_library(Swarm::${name} ALIAS swarm_${name})  # the installed name, for add_subdirectory users
  set_target_properties(swarm_${name} PROPERTIES EXPORT_NAME ${name})
  target_include_directories(swarm_${name} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
                                                  $<INSTALL_INTERFACE:${SWARM_INSTALL_INCLUDEDIR}>)
  target_link_libraries(swarm_${name} PUBLIC ${M_DEPS} PRIVATE ${M_PRIVATE_DEPS})
  install(TARGETS swarm_${name} EXPORT SwarmTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  swarm_install_headers(${name} DETAIL ${M_DETAIL_HEADERS})
  if(SWARM_BUILD_TESTS AND M_TESTS)
    add_executable(${name}_test ${M_TESTS})
    target_link_libraries(${name}_test PRIVATE swarm_${name} ${M_PRIVATE_DEPS} ${M_TEST_DEPS} GTest::gtest_main)
    gtest_discover_tests(${name}_test DISCOVERY_TIMEOUT 60 PROPERTIES LABELS ${name})
  endif()
endfunction()

# swarm_install_headers(NAME [DETAIL header...])
# Installs the headers of the current folder, keeping the repository's layout:
# `#include "runtime/runtime.hpp"` finds <prefix>/include/swarm/runtime/runtime.hpp.
# detail/ stays behind but for the DETAIL headers, which installed headers include
# (they stay implementation details). Test helpers (test_*.hpp, *_test.hpp) stay
# behind. Listed at install time, so a new public header needs no edit here.
function(swarm_install_headers name)
  cmake_parse_arguments(H "" "" "DETAIL" ${ARGN})
  install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/
          DESTINATION ${SWARM_INSTALL_INCLUDEDIR}/${name}
          FILES_MATCHING PATTERN "*.hpp"
          PATTERN "test_*.hpp" EXCLUDE
          PATTERN "*_test.hpp" EXCLUDE
          PATTERN "detail" EXCLUDE)
  foreach(header IN LISTS H_DETAIL)
    get_filename_component(dir ${header} DIRECTORY)
    install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/${header} DESTINATION ${SWARM_INSTALL_INCLUDEDIR}/${name}/${dir})
  endforeach()
endfunction()
