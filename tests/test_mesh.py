"""Tests of handpose.mesh: mesh validation, normals, topology, primitive meshes, skin depth and the
sphere-mesh hand."""
from __future__ import annotations

import numpy as np
import pytest

from handpose import mesh
from handpose.keypoints import BONES, PALM_OUTLINE
from handpose.sample import canonical_hand_keypoints


def test_unit_sphere_is_closed_and_outward():
    vertices, faces = mesh.uv_sphere(6, 10)
    np.testing.assert_allclose(np.linalg.norm(vertices, axis=1), 1.0)
    # closed surface: every edge is shared by exactly two triangles
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)
    # outward winding: positive signed volume, close to the sphere's 4/3 pi
    tri = vertices[faces]
    volume = np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert 0.6 * 4 / 3 * np.pi < volume < 4 / 3 * np.pi


def test_frustum_rings_have_the_end_radii():
    a, b = np.array([0.0, 0.0, 0.0]), np.array([0.0, 10.0, 0.0])
    vertices, faces = mesh.frustum(a, b, 3.0, 1.5, segments=8)
    assert vertices.shape == (16, 3) and faces.shape == (16, 3)
    radial = np.linalg.norm(vertices[:, [0, 2]], axis=1)
    np.testing.assert_allclose(radial[:8], 3.0)
    np.testing.assert_allclose(radial[8:], 1.5)
    np.testing.assert_allclose(vertices[8:, 1], 10.0)
    assert len(mesh.frustum(a, a, 1.0, 1.0)[0]) == 0


def test_sphere_mesh_wraps_every_joint_sphere():
    points = canonical_hand_keypoints()
    radii = np.asarray(mesh.SPHERE_RADII_MM)
    vertices, faces = mesh.sphere_mesh(points)
    assert faces.min() >= 0 and faces.max() < len(vertices)
    # the spheres' poles lie on z: the mesh's z extent is exactly that of the spheres
    assert vertices[:, 2].min() == pytest.approx((points[:, 2] - radii).min())
    assert vertices[:, 2].max() == pytest.approx((points[:, 2] + radii).max())
    # each sphere's vertices are at its radius from its joint
    sphere = len(mesh.uv_sphere()[0])
    for j in (0, 8, 20):
        block = vertices[j * sphere:(j + 1) * sphere]
        np.testing.assert_allclose(np.linalg.norm(block - points[j], axis=1), radii[j])
    assert len(vertices) == 21 * sphere + 2 * 12 * len(BONES) + len(PALM_OUTLINE) * sphere
    with pytest.raises(ValueError, match="21 positive"):
        mesh.sphere_mesh(points, radii[:20])


def test_vertex_normals_of_a_sphere_are_radial():
    vertices, faces = mesh.uv_sphere(24, 32)
    vertices = np.vstack([vertices * 50.0 + [1.0, 2.0, 3.0], [[0.0, 0.0, 0.0]]])  # + an isolated vertex
    normals = mesh.vertex_normals(vertices, faces)
    assert np.array_equal(normals[-1], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(np.linalg.norm(normals[:-1], axis=1), 1.0)
    assert np.einsum("vi,vi->v", normals[:-1], (vertices[:-1] - [1.0, 2.0, 3.0]) / 50.0).min() > 0.99


def test_skin_thickness_of_a_box_is_the_distance_to_its_front_face():
    verts, faces, _ = mesh.box_mesh(np.array([0.0, 0.0, 400.0]), np.eye(3), np.array([60.0, 60.0, 40.0]))
    points = np.array([[0.0, 0.0, 400.0], [10.0, -5.0, 415.0], [100.0, 0.0, 400.0]])
    # the ray from the origin enters through the face z = 380 (inside points), misses (outside)
    np.testing.assert_allclose(mesh.skin_thickness(points, verts, faces), [20.0, 35.0, 0.0], atol=1e-9)


def test_boundary_loop_and_tube_faces_close_a_tube():
    # a tube of 3 rings of 5 vertices has two boundary loops; with one end capped, one loop
    faces = mesh.tube_faces(5, 3)
    assert faces.shape == (2 * 5 * 2, 3)
    cap = np.array([[15, (i + 1) % 5, i] for i in range(5)])
    loop = mesh.boundary_loop(np.concatenate([faces, cap]))
    assert sorted(loop.tolist()) == list(range(10, 15))
    with pytest.raises(ValueError, match="several boundary loops"):
        mesh.boundary_loop(faces)


def test_face_normals_given_or_not_give_the_same_vertex_normals():
    vertices, faces = mesh.uv_sphere(5, 7)
    n = mesh.face_normals(vertices, faces)
    tri = vertices[faces]
    # |(v1 - v0) x (v2 - v0)| = 2 area (Heron's formula as the independent reference)
    a, b, c = (np.linalg.norm(tri[:, i] - tri[:, (i + 1) % 3], axis=1) for i in range(3))
    s = (a + b + c) / 2
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 2 * np.sqrt(s * (s - a) * (s - b) * (s - c)), rtol=1e-9)
    np.testing.assert_array_equal(mesh.vertex_normals(vertices, faces, n), mesh.vertex_normals(vertices, faces))
    with pytest.raises(ValueError, match="face_n"):
        mesh.vertex_normals(vertices, faces, n[:-1])


def test_check_mesh_errors():
    vertices, faces = mesh.check_mesh(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]], np.int32))
    assert vertices.dtype == np.float64 and faces.dtype == np.int64
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        mesh.check_mesh(np.zeros((3, 2)), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="integer"):
        mesh.check_mesh(np.zeros((3, 3)), np.array([[0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match="outside 0..2"):
        mesh.check_mesh(np.zeros((3, 3)), np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match="NaN"):
        mesh.check_mesh(np.full((3, 3), np.nan), np.array([[0, 1, 2]]))
