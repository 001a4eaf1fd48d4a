/*
 * lockcore/lease.c - session leases (placeholder: being written).
 */
#include "lockcore/lease.h"

typedef int lease_placeholder;
