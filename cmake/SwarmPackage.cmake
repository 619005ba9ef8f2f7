# What `cmake --install` puts under the prefix besides the libraries and headers (those
# are installed by swarm_add_module): the CMake package (find_package(Swarm)), a
# pkg-config file, and the CPack settings for a Debian package (cpack -G DEB).
#   <prefix>/lib/cmake/Swarm/SwarmConfig.cmake, SwarmConfigVersion.cmake, SwarmTargets*.cmake
#   <prefix>/lib/pkgconfig/swarm.pc
# See docs/install.md.
include(CMakePackageConfigHelpers)

install(EXPORT SwarmTargets
        NAMESPACE Swarm::
        DESTINATION ${SWARM_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/SwarmConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/SwarmConfig.cmake
                              INSTALL_DESTINATION ${SWARM_INSTALL_CMAKEDIR})
# 0.x: every 0.y release is compatible with a request for 0.z (SameMajorVersion).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/SwarmConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/SwarmConfig.cmake ${PROJECT_BINARY_DIR}/SwarmConfigVersion.cmake
        DESTINATION ${SWARM_INSTALL_CMAKEDIR})

# swarm.pc finds the prefix from its own place (${pcfiledir}), so a moved prefix still works.
set(SWARM_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(SWARM_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(SWARM_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
  set(SWARM_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
else()
  file(RELATIVE_PATH up "/${SWARM_PC_DIR}" "/")  # lib/pkgconfig -> ../..
  string(REGEX REPLACE "/$" "" up "${up}")
  set(SWARM_PC_PREFIX "\${pcfiledir}/${up}")
  set(SWARM_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
  set(SWARM_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
list(TRANSFORM CMAKE_DL_LIBS PREPEND "-l" OUTPUT_VARIABLE SWARM_PC_DL)
list(JOIN SWARM_PC_DL " " SWARM_PC_DL)
configure_file(${PROJECT_SOURCE_DIR}/cmake/swarm.pc.in ${PROJECT_BINARY_DIR}/swarm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/swarm.pc DESTINATION ${SWARM_PC_DIR})

# The guide and the example programs, to read and to build against the installed package.
install(FILES ${PROJECT_SOURCE_DIR}/docs/install.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/cpp/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# -- Debian package: cpack -G DEB in the build directory ---
set(CPACK_PACKAGE_NAME libswarm-dev)
set(CPACK_PACKAGE_VENDOR "Swarm")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Swarm multi-agent messaging runtime (C++20 headers, static libraries, CMake and pkg-config files)")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Swarm maintainers <swarm-dev@example.org>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # libswarm-dev_0.1.0_amd64.deb
# What SwarmConfig.cmake and swarm.pc look for (prometheus-cpp-dev brings civetweb,
# zlib and curl, which its own config file finds; pkg-config finds the rest).
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "pkg-config, nlohmann-json3-dev (>= 3.11), prometheus-cpp-dev, libcpp-httplib-dev, libdw-dev, libpqxx-dev, libpq-dev, libhiredis-dev, libzmq3-dev, cppzmq-dev, libnats-dev, libyaml-cpp-dev, libcli11-dev")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "cmake (>= 3.25)")
set(CPACK_GENERATOR DEB)
include(CPack)
