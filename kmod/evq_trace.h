/* SPDX-License-Identifier: GPL-2.0 */
/*
 * evq tracepoints, for perf, bpftrace and tracefs: each entry posted, each
 * wait (with what userspace harvested since the last one), each batch of
 * changes and the stages of a sendfile.  Documentation/probes.rst shows
 * them in use.  Every event carries the queue id that evqstat and the
 * netlink family report.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM evq

#if !defined(EVQ_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define EVQ_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(evq_post,
	TP_PROTO(u32 queue, u64 user_data, s32 res, u32 flags, u32 seq),
	TP_ARGS(queue, user_data, res, flags, seq),
	TP_STRUCT__entry(
		__field(u32, queue)
		__field(u64, user_data)
		__field(s32, res)
		__field(u32, flags)
		__field(u32, seq)
	),
	TP_fast_assign(
		__entry->queue = queue;
		__entry->user_data = user_data;
		__entry->res = res;
		__entry->flags = flags;
		__entry->seq = seq;
	),
	TP_printk("queue=%u user_data=0x%llx res=%d type=%s flags=0x%x seq=%u",
		  __entry->queue, __entry->user_data, __entry->res,
		  __print_symbolic(__entry->flags & 0xff,
				   { EVQ_CQE_READY, "READY" },
				   { EVQ_CQE_CLOSED, "CLOSED" },
				   { EVQ_CQE_PAGES_READY, "PAGES_READY" },
				   { EVQ_CQE_SENDFILE, "SENDFILE" }),
		  __entry->flags & ~0xffU, __entry->seq)
);

TRACE_EVENT(evq_overflow,
	TP_PROTO(u32 queue, u64 user_data),
	TP_ARGS(queue, user_data),
	TP_STRUCT__entry(
		__field(u32, queue)
		__field(u64, user_data)
	),
	TP_fast_assign(
		__entry->queue = queue;
		__entry->user_data = user_data;
	),
	TP_printk("queue=%u user_data=0x%llx", __entry->queue,
		  __entry->user_data)
);

TRACE_EVENT(evq_wait_enter,
	TP_PROTO(u32 queue, u32 harvested, u32 ready, u32 min_events,
		 s64 timeout_ns),
	TP_ARGS(queue, harvested, ready, min_events, timeout_ns),
	TP_STRUCT__entry(
		__field(u32, queue)
		__field(u32, harvested)
		__field(u32, ready)
		__field(u32, min_events)
		__field(s64, timeout_ns)
	),
	TP_fast_assign(
		__entry->queue = queue;
		__entry->harvested = harvested;
		__entry->ready = ready;
		__entry->min_events = min_events;
		__entry->timeout_ns = timeout_ns;
	),
	TP_printk("queue=%u harvested=%u ready=%u min_events=%u timeout_ns=%lld",
		  __entry->queue, __entry->harvested, __entry->ready,
		  __entry->min_events, __entry->timeout_ns)
);

TRACE_EVENT(evq_wait_exit,
	TP_PROTO(u32 queue, long ret, bool slept),
	TP_ARGS(queue, ret, slept),
	TP_STRUCT__entry(
		__field(u32, queue)
		__field(long, ret)
		__field(bool, slept)
	),
	TP_fast_assign(
		__entry->queue = queue;
		__entry->ret = ret;
		__entry->slept = slept;
	),
	TP_printk("queue=%u ret=%ld slept=%d", __entry->queue, __entry->ret,
		  __entry->slept)
);

TRACE_EVENT(evq_ctl,
	TP_PROTO(u32 queue, u32 nr, long ret),
	TP_ARGS(queue, nr, ret),
	TP_STRUCT__entry(
		__field(u32, queue)
		__field(u32, nr)
		__field(long, ret)
	),
	TP_fast_assign(
		__entry->queue = queue;
		__entry->nr = nr;
		__entry->ret = ret;
	),
	TP_printk("queue=%u nr=%u ret=%ld", __entry->queue, __entry->nr,
		  __entry->ret)
);

TRACE_EVENT(evq_sf_not_resident,
	TP_PROTO(u32 queue, u64 user_data, loff_t pos, loff_t len, bool async),
	TP_ARGS(queue, user_data, pos, len, async),
	TP_STRUCT__entry(
		__field(u32, queue)
		__field(u64, user_data)
		__field(loff_t, pos)
		__field(loff_t, len)
		__field(bool, async)
	),
	TP_fast_assign(
		__entry->queue = queue;
		__entry->user_data = user_data;
		__entry->pos = pos;
		__entry->len = len;
		__entry->async = async;
	),
	TP_printk("queue=%u user_data=0x%llx pos=%lld window=%lld async=%d",
		  __entry->queue, __entry->user_data, __entry->pos,
		  __entry->len, __entry->async)
);

TRACE_EVENT(evq_sf_pages_ready,
	TP_PROTO(u32 queue, u64 user_data, loff_t bytes, u64 latency_ns),
	TP_ARGS(queue, user_data, bytes, latency_ns),
	TP_STRUCT__entry(
		__field(u32, queue)
		__field(u64, user_data)
		__field(loff_t, bytes)
		__field(u64, latency_ns)
	),
	TP_fast_assign(
		__entry->queue = queue;
		__entry->user_data = user_data;
		__entry->bytes = bytes;
		__entry->latency_ns = latency_ns;
	),
	TP_printk("queue=%u user_data=0x%llx bytes=%lld latency_ns=%llu",
		  __entry->queue, __entry->user_data, __entry->bytes,
		  __entry->latency_ns)
);

TRACE_EVENT(evq_sf_done,
	TP_PROTO(u32 queue, u64 user_data, u64 sent, u32 stop, int error,
		 bool async),
	TP_ARGS(queue, user_data, sent, stop, error, async),
	TP_STRUCT__entry(
		__field(u32, queue)
		__field(u64, user_data)
		__field(u64, sent)
		__field(u32, stop)
		__field(int, error)
		__field(bool, async)
	),
	TP_fast_assign(
		__entry->queue = queue;
		__entry->user_data = user_data;
		__entry->sent = sent;
		__entry->stop = stop;
		__entry->error = error;
		__entry->async = async;
	),
	TP_printk("queue=%u user_data=0x%llx sent=%llu stop=%s error=%d async=%d",
		  __entry->queue, __entry->user_data, __entry->sent,
		  __print_symbolic(__entry->stop,
				   { EVQ_SF_STOP_DONE, "DONE" },
				   { EVQ_SF_STOP_SOCK_FULL, "SOCK_FULL" },
				   { EVQ_SF_STOP_NOT_RESIDENT, "NOT_RESIDENT" },
				   { EVQ_SF_STOP_ERROR, "ERROR" }),
		  __entry->error, __entry->async)
);

#endif /* EVQ_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE evq_trace
#include <trace/define_trace.h>
