/*
 * lockcore/lease.h - session leases as the leader and a node see them
 * (placeholder: being written).
 */
#ifndef CLUCK_LEASE_H
#define CLUCK_LEASE_H
#endif /* CLUCK_LEASE_H */
