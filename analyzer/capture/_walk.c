/* Optional compiled helper: walk pcap record headers (the one step per record that Python
 * cannot vectorise), and read the L2-L4 header fields of a block's frames in one pass (numpy
 * needs a gather per field). analyzer/capture/reader.py and analyzer/packets.py fall back to
 * Python/numpy when this is absent; tests/test_walk.py checks that both give identical results. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static uint32_t rd32(const unsigned char *p, int big) {
    if (big)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | (uint32_t)p[0];
}

/* walk_pcap(buffer, start, max_records, big_endian, limit)
 *   -> (offsets: bytes of int64, seconds, fractions, captured lengths: bytes of int64 each, next_offset)
 * Stops at max_records, at the end of the buffer, or before a record whose captured length
 * exceeds `limit` or runs past the end (the caller reports that damage). */
static PyObject *walk_pcap(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, max_records;
    int big;
    unsigned long limit;
    if (!PyArg_ParseTuple(args, "y*nnik", &view, &start, &max_records, &big, &limit))
        return NULL;
    if (start < 0 || max_records < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "negative start or count");
        return NULL;
    }
    PyObject *cols[4];
    int64_t *col[4];
    for (int i = 0; i < 4; i++) {
        cols[i] = PyBytes_FromStringAndSize(NULL, max_records * (Py_ssize_t)sizeof(int64_t));
        if (cols[i] == NULL) {
            for (int j = 0; j < i; j++)
                Py_DECREF(cols[j]);
            PyBuffer_Release(&view);
            return NULL;
        }
        col[i] = (int64_t *)PyBytes_AS_STRING(cols[i]);
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t len = view.len, off = start, n = 0;
    Py_BEGIN_ALLOW_THREADS
    while (n < max_records && off + 16 <= len) {
        uint32_t incl = rd32(buf + off + 8, big);
        if (incl > limit || (Py_ssize_t)incl > len - off - 16)
            break;
        col[0][n] = (int64_t)off;
        col[1][n] = (int64_t)rd32(buf + off, big);
        col[2][n] = (int64_t)rd32(buf + off + 4, big);
        col[3][n] = (int64_t)incl;
        n++;
        off += 16 + (Py_ssize_t)incl;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    for (int i = 0; i < 4; i++) {
        if (_PyBytes_Resize(&cols[i], n * (Py_ssize_t)sizeof(int64_t)) < 0) {
            for (int j = i + 1; j < 4; j++)
                Py_DECREF(cols[j]);
            return NULL;
        }
    }
    return Py_BuildValue("(NNNNn)", cols[0], cols[1], cols[2], cols[3], off);
}

/* --- tcp_headers: the L2-L4 header pass of analyzer/packets.py (skim) for a block of frames.
 * Every read goes through g8/g16/g32, which clamp the position to the buffer exactly as the numpy
 * path does (a frame cut short reads bytes past its end; the checks below then discard it), so the
 * two paths agree byte for byte, and no read can leave the buffer whatever the capture holds. */

static inline int64_t g8(const unsigned char *d, Py_ssize_t len, int64_t pos) {
    if (len < 1)
        return 0;
    if (pos > len - 1)
        pos = len - 1;
    return d[pos];
}

static inline int64_t g16(const unsigned char *d, Py_ssize_t len, int64_t pos) {
    if (len < 2)
        return 0;
    if (pos > len - 2)
        pos = len - 2;
    return ((int64_t)d[pos] << 8) | d[pos + 1];
}

static inline int64_t g32(const unsigned char *d, Py_ssize_t len, int64_t pos) {
    if (len < 4)
        return 0;
    if (pos > len - 4)
        pos = len - 4;
    return ((int64_t)d[pos] << 24) | ((int64_t)d[pos + 1] << 16) | ((int64_t)d[pos + 2] << 8) | d[pos + 3];
}

static inline int ipv6_ext(int64_t nh) {
    return nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 60 || nh == 135 || nh == 139 || nh == 140;
}

enum { C_IDX, C_FAM, C_A0, C_B0 = C_A0 + 4, C_PA = C_B0 + 4, C_PB, C_SWAP, C_FLAGS, C_SEQ, C_ACK, C_POFF, C_PLEN, C_WLEN, NCOLS };

/* Network-layer offset and family (4, 6, 0) of one frame; 0 family for a link type not read here. */
static void link_layer(const unsigned char *d, Py_ssize_t len, int64_t o, int32_t lt, int64_t *l3, int64_t *fam) {
    int64_t et, pos;
    *l3 = 0;
    *fam = 0;
    if (lt == 1) { /* Ethernet, up to two VLAN tags */
        et = g16(d, len, o + 12);
        pos = o + 14;
        for (int k = 0; k < 2; k++) {
            if (et == 0x8100 || et == 0x88A8 || et == 0x9100) {
                et = g16(d, len, pos + 2);
                pos += 4;
            }
        }
    } else if (lt == 113) {
        et = g16(d, len, o + 14);
        pos = o + 16;
    } else if (lt == 276) {
        et = g16(d, len, o);
        pos = o + 20;
    } else if (lt == 101 || lt == 12 || lt == 14 || lt == 228 || lt == 229) {
        int64_t ver = g8(d, len, o) >> 4;
        et = ver == 4 ? 0x0800 : ver == 6 ? 0x86DD : 0;
        pos = o;
    } else if (lt == 0 || lt == 108) {
        int64_t le = g8(d, len, o) | (g8(d, len, o + 1) << 8) | (g8(d, len, o + 2) << 16) | (g8(d, len, o + 3) << 24);
        int64_t be = g32(d, len, o);
        int64_t famv = lt == 0 ? (le < 256 ? le : be) : be;
        et = famv == 2 ? 0x0800 : (famv == 10 || famv == 24 || famv == 28 || famv == 30) ? 0x86DD : 0;
        pos = o + 4;
    } else {
        return;
    }
    *l3 = pos;
    *fam = et == 0x0800 ? 4 : et == 0x86DD ? 6 : 0;
}

/* tcp_headers(data, off, caplen, linktype, columns) -> (tcp, non_ip, non_tcp, fragments,
 *                                                      first_fragment, truncated)
 * data: the bytes the offsets point into; off, caplen: int64 per frame; linktype: int32 per frame.
 * columns: a writable buffer of at least NCOLS x len(off) int64 (the caller's, reused from block
 * to block), filled as NCOLS rows of len(off) entries, of which the first `tcp` are the TCP
 * segments, in frame order: frame index, family, A's address (4 words), B's, A's port, B's,
 * swapped (1 when the sender is B), flags, seq, ack, payload offset, captured and wire payload
 * lengths. A is the lower (address, port) of the two ends. first_fragment: index or -1. */
static PyObject *tcp_headers(PyObject *self, PyObject *args) {
    Py_buffer vd, vo, vc, vl, vout;
    if (!PyArg_ParseTuple(args, "y*y*y*y*w*", &vd, &vo, &vc, &vl, &vout))
        return NULL;
    Py_ssize_t n = vo.len / (Py_ssize_t)sizeof(int64_t);
    PyObject *out = NULL;
    if (vc.len / (Py_ssize_t)sizeof(int64_t) != n || vl.len / (Py_ssize_t)sizeof(int32_t) != n) {
        PyErr_SetString(PyExc_ValueError, "off, caplen and linktype differ in length");
        goto done;
    }
    if (vout.len / (Py_ssize_t)sizeof(int64_t) < (Py_ssize_t)NCOLS * n) {
        PyErr_SetString(PyExc_ValueError, "the columns buffer is too small");
        goto done;
    }
    int64_t *col = (int64_t *)vout.buf;
    const unsigned char *d = (const unsigned char *)vd.buf;
    const int64_t *off = (const int64_t *)vo.buf, *caplen = (const int64_t *)vc.buf;
    const int32_t *lts = (const int32_t *)vl.buf;
    Py_ssize_t len = vd.len, m = 0, non_ip = 0, non_tcp = 0, frags = 0, first_frag = -1, truncated = 0;
    for (Py_ssize_t i = 0; i < n; i++) { /* the reader's promise, checked: every read below stays in */
        if (off[i] < 0 || caplen[i] < 0 || off[i] > (int64_t)len - caplen[i]) {
            PyErr_Format(PyExc_ValueError, "frame %zd lies outside the buffer", i);
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t l3, fam, end = off[i] + caplen[i];
        link_layer(d, len, off[i], lts[i], &l3, &fam);
        if (fam == 0) {
            non_ip++;
            continue;
        }
        int64_t b0 = g8(d, len, l3), proto, tcp_off, ip_end;
        int frag = 0;
        if (fam == 4) {
            int64_t ihl = (b0 & 0x0F) * 4;
            if ((b0 >> 4) != 4 || ihl < 20 || l3 + ihl > end)
                continue;
            int64_t total = g16(d, len, l3 + 2);
            frag = (g16(d, len, l3 + 6) & 0x3FFF) != 0;
            proto = g8(d, len, l3 + 9);
            tcp_off = l3 + ihl;
            ip_end = total > 0 ? l3 + total : end;
        } else {
            if ((b0 >> 4) != 6 || l3 + 40 > end)
                continue;
            int64_t plen6 = g16(d, len, l3 + 4);
            proto = g8(d, len, l3 + 6);
            tcp_off = l3 + 40;
            ip_end = plen6 > 0 ? l3 + 40 + plen6 : end;
            if (ipv6_ext(proto)) { /* extension headers, as packets._ipv6_ext_walk */
                int64_t stop = end < len ? end : len; /* never read past the buffer */
                for (int k = 0; k < 8; k++) {
                    int64_t p = tcp_off;
                    if (!ipv6_ext(proto) || p + 8 > stop)
                        break;
                    if (proto == 44) {
                        frag = frag || ((((int64_t)d[p + 2] << 8) | d[p + 3]) & 0xFFF9) != 0;
                        tcp_off = p + 8;
                    } else if (proto == 51) {
                        tcp_off = p + ((int64_t)d[p + 1] + 2) * 4;
                    } else {
                        tcp_off = p + ((int64_t)d[p + 1] + 1) * 8;
                    }
                    proto = d[p];
                }
            }
        }
        if (frag) {
            frags++;
            if (first_frag < 0)
                first_frag = i;
            continue;
        }
        if (proto != 6) {
            non_tcp++;
            continue;
        }
        if (tcp_off + 20 > end) {
            truncated++;
            continue;
        }
        int64_t t = tcp_off, src[4] = {0, 0, 0, 0}, dst[4] = {0, 0, 0, 0};
        int64_t sport = g16(d, len, t), dport = g16(d, len, t + 2);
        if (fam == 4) {
            src[3] = g32(d, len, l3 + 12);
            dst[3] = g32(d, len, l3 + 16);
        } else {
            for (int k = 0; k < 4; k++) {
                src[k] = g32(d, len, l3 + 8 + 4 * k);
                dst[k] = g32(d, len, l3 + 24 + 4 * k);
            }
        }
        int k = 0; /* swapped: (src, sport) > (dst, dport), word by word */
        while (k < 4 && src[k] == dst[k])
            k++;
        int swap = k < 4 ? src[k] > dst[k] : sport > dport;
        int64_t doff = (g8(d, len, t + 12) >> 4) * 4;
        int64_t pstart = t + (doff > 20 ? doff : 20);
        int64_t cap_end = end < ip_end ? end : ip_end;
        col[C_IDX * n + m] = i;
        col[C_FAM * n + m] = fam;
        for (k = 0; k < 4; k++) {
            col[(C_A0 + k) * n + m] = swap ? dst[k] : src[k];
            col[(C_B0 + k) * n + m] = swap ? src[k] : dst[k];
        }
        col[C_PA * n + m] = swap ? dport : sport;
        col[C_PB * n + m] = swap ? sport : dport;
        col[C_SWAP * n + m] = swap;
        col[C_FLAGS * n + m] = g8(d, len, t + 13);
        col[C_SEQ * n + m] = g32(d, len, t + 4);
        col[C_ACK * n + m] = g32(d, len, t + 8);
        col[C_POFF * n + m] = pstart;
        col[C_PLEN * n + m] = cap_end - pstart > 0 ? cap_end - pstart : 0;
        col[C_WLEN * n + m] = ip_end - pstart > 0 ? ip_end - pstart : 0;
        m++;
    }
    Py_END_ALLOW_THREADS
    out = Py_BuildValue("(nnnnnn)", m, non_ip, non_tcp, frags, first_frag, truncated);
done:
    PyBuffer_Release(&vout);
    PyBuffer_Release(&vd);
    PyBuffer_Release(&vo);
    PyBuffer_Release(&vc);
    PyBuffer_Release(&vl);
    return out;
}

static PyMethodDef methods[] = {
    {"walk_pcap", walk_pcap, METH_VARARGS, "Offsets of consecutive pcap record headers."},
    {"tcp_headers", tcp_headers, METH_VARARGS, "L2-L4 header fields of a block's TCP segments."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
